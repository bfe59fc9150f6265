//! Reading `proxy.yaml` and reporting problems as `file:line:col: message`.

use super::locate::{ConfigPath, Locator, Position};
use super::Config;
use std::fmt;
use std::path::{Path, PathBuf};

/// The text a config came from, kept so that later checks can point into it.
pub struct Source {
    /// The file name as the operator wrote it (used in messages).
    pub name: String,
    pub text: String,
    /// What relative paths in the config are relative to (the config file's directory);
    /// `None`: they are left as written.
    pub base_dir: Option<PathBuf>,
    locator: Locator,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let locator = Locator::new(&text);
        Self {
            name: name.into(),
            text,
            base_dir: None,
            locator,
        }
    }

    /// An error at `path` in this file.
    pub fn error_at(&self, path: &ConfigPath, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.name.clone(),
            position: Some(self.locator.position(path)),
            message: message.into(),
        }
    }
}

/// One problem with a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub position: Option<Position>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in a config file, one per line when displayed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        Self(vec![e])
    }
}

/// serde_yaml appends " at line L column C" to its messages; we print the position up front.
fn strip_location_suffix(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(idx) => &message[..idx],
        None => message,
    }
}

/// Parse config text. Syntax and type errors stop at the first (serde cannot go on); semantic
/// checks, which report every problem, happen when the runtime is built from the result.
/// Top-level keys the engine does not know are kept, unparsed, in [`Config::sections`].
pub fn load_str(name: &str, text: &str) -> Result<(Config, Source), ConfigErrors> {
    let source = Source::new(name, text);
    let syntax = |e: serde_yaml_ng::Error| -> ConfigErrors {
        let position = e.location().map(|l| Position {
            line: l.line(),
            column: l.column(),
        });
        let full = e.to_string();
        ConfigError {
            file: name.to_string(),
            position: position.or(Some(Position { line: 1, column: 1 })),
            message: strip_location_suffix(&full).to_string(),
        }
        .into()
    };
    let mut others = Vec::new();
    let mut config: Config =
        serde_ignored::deserialize(serde_yaml_ng::Deserializer::from_str(text), |path| {
            if let serde_ignored::Path::Map {
                parent: serde_ignored::Path::Root,
                key,
            } = path
            {
                others.push(key);
            }
        })
        .map_err(syntax)?;
    if !others.is_empty() {
        let serde_yaml_ng::Value::Mapping(mut top) =
            serde_yaml_ng::from_str(text).map_err(syntax)?
        else {
            return Ok((config, source));
        };
        for key in others {
            if let Some(value) = top.remove(key.as_str()) {
                config.sections.insert(key, value);
            }
        }
    }
    Ok((config, source))
}

/// Read a config file's text.
pub fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError {
            file: path.display().to_string(),
            position: None,
            message: format!("cannot read: {e}"),
        }
        .into()
    })
}

/// Read and parse a config file.
pub fn load_file(path: &Path) -> Result<(Config, Source), ConfigErrors> {
    load_str(&path.display().to_string(), &read_file(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_has_position() {
        let text = "listen:\n  - address: \"127.0.0.1:1\"\n    colour: blue\n";
        let err = load_str("proxy.yaml", text).err().unwrap();
        let line = err.to_string();
        assert!(line.starts_with("proxy.yaml:3:5: "), "{line}");
        assert!(line.contains("unknown field `colour`"), "{line}");
    }

    #[test]
    fn syntax_error_has_position() {
        let err = load_str("p.yaml", "routes: [\n").err().unwrap();
        assert!(err.to_string().starts_with("p.yaml:2:"), "{err}");
    }

    #[test]
    fn bad_value_has_position() {
        let text = "clusters:\n  web:\n    endpoints: [\"127.0.0.1:1\"]\n    timeouts: { connect: soon }\n";
        let err = load_str("p.yaml", text).err().unwrap().to_string();
        assert!(err.starts_with("p.yaml:4:"), "{err}");
        assert!(err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn empty_file_is_default_config() {
        let (cfg, _) = load_str("p.yaml", "{}").unwrap();
        assert_eq!(cfg.listen.len(), 1);
        assert!(cfg.routes.is_empty());
    }
}
