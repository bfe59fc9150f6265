//! `origins:`: the object stores images are read from, by name. On reload an origin whose
//! config is unchanged is kept (with its connections); the others are built anew.

use super::config::OriginConfig;
use std::collections::BTreeMap;
use std::sync::Arc;
use tessera_origin::{DirOrigin, Origin, S3Origin, S3Settings};
use tessera_proxy::plugin::{known, BuildError, BuildErrors, Resource, ResourceContext};

/// The configured origins.
#[derive(Default)]
pub struct Origins {
    configs: BTreeMap<String, OriginConfig>,
    built: BTreeMap<String, Arc<dyn Origin>>,
}

impl Resource for Origins {}

impl Origins {
    /// Build every origin of `config`, reporting each one's problem at its name.
    pub fn build(
        config: Option<BTreeMap<String, OriginConfig>>,
        ctx: &ResourceContext<'_, Origins>,
    ) -> Result<Self, BuildErrors> {
        let mut origins = Origins::default();
        let mut errors = Vec::new();
        for (name, oc) in config.unwrap_or_default() {
            let mut oc = oc;
            if let Some(dir) = oc.dir.as_mut() {
                *dir = ctx.resolve_path(dir);
            }
            let kept = ctx
                .previous()
                .filter(|p| p.configs.get(&name) == Some(&oc))
                .and_then(|p| p.built.get(&name).cloned());
            match kept.map_or_else(|| build_origin(&oc), Ok) {
                Ok(origin) => {
                    origins.built.insert(name.clone(), origin);
                    origins.configs.insert(name, oc);
                }
                Err(e) => errors.push(BuildError::new(format!("origin {name:?}: {e}")).at(&name)),
            }
        }
        if errors.is_empty() {
            Ok(origins)
        } else {
            Err(BuildErrors(errors))
        }
    }

    /// The origin called `name`.
    pub fn get(&self, name: &str) -> Result<Arc<dyn Origin>, BuildError> {
        self.built.get(name).cloned().ok_or_else(|| {
            BuildError::new(format!(
                "unknown origin {name:?} (defined: {})",
                known(self.built.keys())
            ))
        })
    }

    /// The origins' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.built.keys().map(String::as_str)
    }
}

/// Build one origin. Errors are messages for the config report.
fn build_origin(config: &OriginConfig) -> Result<Arc<dyn Origin>, String> {
    match (&config.s3, &config.dir) {
        (Some(s3), None) => {
            let settings = S3Settings {
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                endpoint: s3.endpoint.clone(),
                path_style: s3.path_style,
                connect_timeout: s3.timeouts.connect.0,
                read_timeout: s3.timeouts.read.0,
                min_rate: s3.timeouts.min_rate.0,
                min_rate_after: s3.timeouts.min_rate_after.0,
                operation_timeout: s3.timeouts.operation.map(|d| d.0),
                max_attempts: s3.max_attempts,
            };
            if settings.bucket.is_empty() {
                return Err("s3.bucket is empty".into());
            }
            Ok(Arc::new(
                S3Origin::new(&settings).map_err(|e| e.to_string())?,
            ))
        }
        (None, Some(dir)) => match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(Arc::new(DirOrigin::new(dir))),
            Ok(_) => Err(format!("dir {dir:?} is not a directory")),
            Err(e) => Err(format!("cannot read dir {dir:?}: {e}")),
        },
        _ => Err("an origin needs exactly one of `s3` or `dir`".into()),
    }
}
