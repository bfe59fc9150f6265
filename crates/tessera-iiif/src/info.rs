//! The image information document (info.json) for 2.1 and 3.0, from one model.
//!
//! A server describes an image once ([`ImageInfo`]) and answers either version, so the model
//! holds what the image and server offer, and [`ImageInfo::to_json`] spells it the way each
//! version wants. The differences that matter to clients:
//!
//! | what | 2.1 | 3.0 |
//! |------|-----|-----|
//! | context | `http://iiif.io/api/image/2/context.json` | `http://iiif.io/api/image/3/context.json` |
//! | id | `@id` | `id`, plus `"type": "ImageService3"` |
//! | level | `profile: ["http://iiif.io/api/image/2/level2.json", {...}]` | `profile: "level2"` |
//! | formats, qualities, features | `formats`, `qualities`, `supports` inside the profile object | `extraFormats`, `extraQualities`, `extraFeatures` at top level |
//! | size limits | `maxWidth`, `maxHeight`, `maxArea` inside the profile object | at top level |
//! | rights | `license` | `rights` |
//! | preferred formats | (none) | `preferredFormats` |
//!
//! Optional lists that are empty are left out, as 2.1 §5.3 asks ("SHOULD be omitted ... rather
//! than being present with an empty list") and as is idiomatic in 3.0.
//!
//! Feature names are written once, in either version's vocabulary, and translated: 3.0's
//! `sizeUpscaling` is 2.1's `sizeAboveFull`; 3.0's `sizeByWh` (any `w,h`) is 2.1's `sizeByWh`
//! plus `sizeByDistortedWh`; 2.1's deprecated `sizeByWhListed` and `sizeByForcedWh` do not exist
//! in 3.0 and are dropped there. Other names are the same in both and pass through.

use serde_json::{json, Map, Value};

use crate::format::Format;
use crate::limits::ImageLimits;
use crate::quality::Quality;
use crate::Version;

/// One entry of `tiles`: tiles of `width` x `height` (square when `height` is `None`) available
/// at each of `scale_factors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileSpec {
    pub width: u32,
    pub height: Option<u32>,
    pub scale_factors: Vec<u32>,
}

/// What info.json says about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The base URI: scheme, server, prefix and identifier, no trailing slash.
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub tiles: Vec<TileSpec>,
    /// Preferred `(width, height)` sizes of the full image (see [`pyramid_sizes`]).
    pub sizes: Vec<(u32, u32)>,
    /// Compliance level: 0, 1 or 2 (larger values are written as 2).
    pub level: u8,
    /// Formats beyond those of the compliance level.
    pub extra_formats: Vec<Format>,
    /// Qualities beyond `default` (which is always offered and never listed).
    pub extra_qualities: Vec<Quality>,
    /// Features beyond those of the compliance level, by name (either version's; see above).
    pub extra_features: Vec<String>,
    /// 3.0 `preferredFormats`, most preferred first; not written in 2.1, which has no such
    /// property.
    pub preferred_formats: Vec<Format>,
    /// 3.0 requires `maxWidth` or `maxArea` when `sizeUpscaling` is offered.
    pub max_width: Option<u32>,
    /// Without `max_width`, written with `maxWidth` equal to the image width, because both
    /// specs require `maxWidth` whenever `maxHeight` is given (a conservative claim: clients
    /// ask for no more than the server serves).
    pub max_height: Option<u32>,
    pub max_area: Option<u64>,
    /// A license or rights statement URI: 3.0 `rights`, 2.1 `license`.
    pub rights: Option<String>,
}

impl ImageInfo {
    /// The minimal description: an image, its size and compliance level, nothing optional.
    pub fn new(id: impl Into<String>, width: u32, height: u32, level: u8) -> Self {
        ImageInfo {
            id: id.into(),
            width,
            height,
            tiles: Vec::new(),
            sizes: Vec::new(),
            level,
            extra_formats: Vec::new(),
            extra_qualities: Vec::new(),
            extra_features: Vec::new(),
            preferred_formats: Vec::new(),
            max_width: None,
            max_height: None,
            max_area: None,
            rights: None,
        }
    }

    /// The numbers requests are resolved against: the limits the server enforces are the ones
    /// it publishes.
    pub fn limits(&self) -> ImageLimits {
        ImageLimits {
            width: self.width,
            height: self.height,
            max_width: self.max_width,
            max_height: self.max_height,
            max_area: self.max_area,
        }
    }

    /// The info.json document for `version`.
    pub fn to_json(&self, version: Version) -> Value {
        let level = self.level.min(2);
        let mut doc = Map::new();
        doc.insert("@context".into(), json!(version.context()));
        match version {
            Version::V2 => {
                doc.insert("@id".into(), json!(self.id));
            }
            Version::V3 => {
                doc.insert("id".into(), json!(self.id));
                doc.insert("type".into(), json!("ImageService3"));
            }
        }
        doc.insert("protocol".into(), json!("http://iiif.io/api/image"));
        doc.insert("width".into(), json!(self.width));
        doc.insert("height".into(), json!(self.height));

        let formats = self
            .extra_formats
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>();
        let qualities = self
            .extra_qualities
            .iter()
            .filter(|q| **q != Quality::Default)
            .map(|q| q.as_str())
            .collect::<Vec<_>>();
        let features = feature_names(&self.extra_features, version);
        let limits = self.limit_fields();

        match version {
            Version::V2 => {
                let mut profile = Map::new();
                put_list(&mut profile, "formats", &formats);
                put_list(&mut profile, "qualities", &qualities);
                put_list(&mut profile, "supports", &features);
                profile.extend(limits);
                let mut list = vec![json!(version.level_uri(level))];
                if !profile.is_empty() {
                    list.push(Value::Object(profile));
                }
                doc.insert("profile".into(), Value::Array(list));
            }
            Version::V3 => {
                doc.insert("profile".into(), json!(format!("level{level}")));
                doc.extend(limits);
            }
        }

        if !self.sizes.is_empty() {
            let sizes = self
                .sizes
                .iter()
                .map(|&(w, h)| json!({ "width": w, "height": h }))
                .collect();
            doc.insert("sizes".into(), Value::Array(sizes));
        }
        if !self.tiles.is_empty() {
            let tiles = self
                .tiles
                .iter()
                .map(|t| {
                    let mut o = Map::new();
                    o.insert("width".into(), json!(t.width));
                    if let Some(h) = t.height {
                        o.insert("height".into(), json!(h));
                    }
                    o.insert("scaleFactors".into(), json!(t.scale_factors));
                    Value::Object(o)
                })
                .collect();
            doc.insert("tiles".into(), Value::Array(tiles));
        }

        if let Some(rights) = &self.rights {
            let key = match version {
                Version::V2 => "license",
                Version::V3 => "rights",
            };
            doc.insert(key.into(), json!(rights));
        }
        if version == Version::V3 {
            let preferred = self
                .preferred_formats
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>();
            put_list(&mut doc, "preferredFormats", &preferred);
            put_list(&mut doc, "extraFormats", &formats);
            put_list(&mut doc, "extraQualities", &qualities);
            put_list(&mut doc, "extraFeatures", &features);
        }
        Value::Object(doc)
    }

    /// `maxWidth`, `maxHeight`, `maxArea` as present; `maxHeight` never without `maxWidth`.
    fn limit_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let max_width = match (self.max_width, self.max_height) {
            (None, Some(_)) => Some(self.width),
            (w, _) => w,
        };
        if let Some(w) = max_width {
            m.insert("maxWidth".into(), json!(w));
        }
        if let Some(h) = self.max_height {
            m.insert("maxHeight".into(), json!(h));
        }
        if let Some(a) = self.max_area {
            m.insert("maxArea".into(), json!(a));
        }
        m
    }
}

fn put_list(map: &mut Map<String, Value>, key: &str, items: &[&str]) {
    if !items.is_empty() {
        map.insert(key.into(), json!(items));
    }
}

/// Feature names in `version`'s vocabulary, in the given order, without duplicates.
fn feature_names(features: &[String], version: Version) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for f in features {
        let names: &[&str] = match (version, f.as_str()) {
            (Version::V2, "sizeUpscaling") => &["sizeAboveFull"],
            (Version::V2, "sizeByWh") => &["sizeByWh", "sizeByDistortedWh"],
            (Version::V3, "sizeAboveFull") => &["sizeUpscaling"],
            (Version::V3, "sizeByDistortedWh") => &["sizeByWh"],
            (Version::V3, "sizeByWhListed" | "sizeByForcedWh") => &[],
            (_, name) => &[name],
        };
        for &n in names {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
}

/// Sizes for info.json's `sizes`: the full image halved `levels - 1` times, as a tiled pyramid
/// offers them, smallest first (the order of the spec's examples). Level `k` is
/// `ceil(width / 2^k)` x `ceil(height / 2^k)`, the rounding the spec's tile calculation uses
/// (3.0 implementation notes §3), so each size is exactly what the tiles at scale factor `2^k`
/// assemble to. Stops early, without repeating itself, once it reaches 1x1.
///
/// The full size is included; a server with `maxWidth` etc. below it should drop the sizes over
/// its limits, since "servers MUST ensure that sizes ... are within any size limits expressed".
pub fn pyramid_sizes(width: u32, height: u32, levels: u32) -> Vec<(u32, u32)> {
    let mut sizes = Vec::new();
    if width == 0 || height == 0 {
        return sizes;
    }
    for k in 0..levels.min(32) {
        let s = (width.div_ceil(1 << k), height.div_ceil(1 << k));
        if sizes.last() == Some(&s) {
            break;
        }
        sizes.push(s);
    }
    sizes.reverse();
    sizes
}

/// How many pyramid levels keep the longer side of the smallest level at `min_edge` pixels or
/// more (at least 1): the `levels` for [`pyramid_sizes`] and [`scale_factors`].
/// E.g. 6000x4000 with `min_edge` 100: 6000, 3000, 1500, 750, 375, 188 -> 6 levels.
pub fn pyramid_levels(width: u32, height: u32, min_edge: u32) -> u32 {
    let long = width.max(height);
    let mut levels = 1;
    // Level `levels` would be new only if the previous one was not already one pixel.
    while levels < 32
        && long.div_ceil(1 << (levels - 1)) > 1
        && long.div_ceil(1 << levels) >= min_edge.max(1)
    {
        levels += 1;
    }
    levels
}

/// Scale factors `1, 2, 4, ...` for `levels` pyramid levels, for [`TileSpec::scale_factors`].
pub fn scale_factors(levels: u32) -> Vec<u32> {
    (0..levels.min(32)).map(|k| 1 << k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full_info() -> ImageInfo {
        ImageInfo {
            tiles: vec![
                TileSpec {
                    width: 512,
                    height: None,
                    scale_factors: vec![1, 2, 4],
                },
                TileSpec {
                    width: 1024,
                    height: Some(2048),
                    scale_factors: vec![8, 16],
                },
            ],
            sizes: vec![(150, 100), (600, 400), (3000, 2000)],
            extra_formats: vec![Format::Png, Format::Gif, Format::Pdf],
            extra_qualities: vec![Quality::Color, Quality::Gray],
            extra_features: vec![
                "canonicalLinkHeader".into(),
                "rotationArbitrary".into(),
                "profileLinkHeader".into(),
            ],
            preferred_formats: vec![Format::Png, Format::Gif],
            max_width: Some(3000),
            max_height: Some(2000),
            max_area: Some(4_000_000),
            rights: Some("http://rightsstatements.org/vocab/InC-EDU/1.0/".into()),
            ..ImageInfo::new(
                "https://example.org/image-service/abcd1234/1E34750D-38DB-4825-A38A-B60A345E591C",
                6000,
                4000,
                1,
            )
        }
    }

    #[test]
    fn v3_complete_response_matches_the_spec_example() {
        // 3.0 §5.9, less the extension context and the service block.
        let want = json!({
          "@context": "http://iiif.io/api/image/3/context.json",
          "id": "https://example.org/image-service/abcd1234/1E34750D-38DB-4825-A38A-B60A345E591C",
          "type": "ImageService3",
          "protocol": "http://iiif.io/api/image",
          "profile": "level1",
          "width": 6000,
          "height": 4000,
          "maxWidth": 3000,
          "maxHeight": 2000,
          "maxArea": 4000000,
          "sizes": [
            { "width": 150, "height": 100 },
            { "width": 600, "height": 400 },
            { "width": 3000, "height": 2000 }
          ],
          "tiles": [
            { "width": 512, "scaleFactors": [ 1, 2, 4 ] },
            { "width": 1024, "height": 2048, "scaleFactors": [ 8, 16 ] }
          ],
          "rights": "http://rightsstatements.org/vocab/InC-EDU/1.0/",
          "preferredFormats": [ "png", "gif"],
          "extraFormats": [ "png", "gif", "pdf" ],
          "extraQualities": [ "color", "gray" ],
          "extraFeatures": [ "canonicalLinkHeader", "rotationArbitrary", "profileLinkHeader" ]
        });
        assert_eq!(full_info().to_json(Version::V3), want);
    }

    #[test]
    fn v2_puts_extras_and_limits_in_the_profile() {
        let want = json!({
          "@context": "http://iiif.io/api/image/2/context.json",
          "@id": "https://example.org/image-service/abcd1234/1E34750D-38DB-4825-A38A-B60A345E591C",
          "protocol": "http://iiif.io/api/image",
          "width": 6000,
          "height": 4000,
          "profile": [
            "http://iiif.io/api/image/2/level1.json",
            {
              "formats": [ "png", "gif", "pdf" ],
              "qualities": [ "color", "gray" ],
              "supports": [ "canonicalLinkHeader", "rotationArbitrary", "profileLinkHeader" ],
              "maxWidth": 3000,
              "maxHeight": 2000,
              "maxArea": 4000000
            }
          ],
          "sizes": [
            { "width": 150, "height": 100 },
            { "width": 600, "height": 400 },
            { "width": 3000, "height": 2000 }
          ],
          "tiles": [
            { "width": 512, "scaleFactors": [ 1, 2, 4 ] },
            { "width": 1024, "height": 2048, "scaleFactors": [ 8, 16 ] }
          ],
          "license": "http://rightsstatements.org/vocab/InC-EDU/1.0/"
        });
        assert_eq!(full_info().to_json(Version::V2), want);
    }

    #[test]
    fn minimal_documents() {
        let info = ImageInfo::new("https://example.org/iiif/abc", 300, 200, 2);
        assert_eq!(
            info.to_json(Version::V2),
            json!({
              "@context": "http://iiif.io/api/image/2/context.json",
              "@id": "https://example.org/iiif/abc",
              "protocol": "http://iiif.io/api/image",
              "width": 300,
              "height": 200,
              "profile": ["http://iiif.io/api/image/2/level2.json"]
            })
        );
        assert_eq!(
            info.to_json(Version::V3),
            json!({
              "@context": "http://iiif.io/api/image/3/context.json",
              "id": "https://example.org/iiif/abc",
              "type": "ImageService3",
              "protocol": "http://iiif.io/api/image",
              "profile": "level2",
              "width": 300,
              "height": 200
            })
        );
    }

    #[test]
    fn context_comes_first_when_serialised() {
        let text = serde_json::to_string(&full_info().to_json(Version::V3)).unwrap();
        assert!(text.starts_with("{\"@context\":"), "{text}");
        let text = serde_json::to_string(&full_info().to_json(Version::V2)).unwrap();
        assert!(text.starts_with("{\"@context\":"), "{text}");
    }

    #[test]
    fn default_quality_and_out_of_range_levels() {
        let mut info = ImageInfo::new("x", 1, 1, 7);
        info.extra_qualities = vec![Quality::Default, Quality::Bitonal];
        let v3 = info.to_json(Version::V3);
        assert_eq!(v3["profile"], json!("level2"));
        assert_eq!(v3["extraQualities"], json!(["bitonal"]));
        let v2 = info.to_json(Version::V2);
        assert_eq!(
            v2["profile"][0],
            json!("http://iiif.io/api/image/2/level2.json")
        );
        assert_eq!(v2["profile"][1]["qualities"], json!(["bitonal"]));
    }

    #[test]
    fn max_height_alone_gets_a_max_width() {
        let mut info = ImageInfo::new("x", 6000, 4000, 2);
        info.max_height = Some(1000);
        let v3 = info.to_json(Version::V3);
        assert_eq!(v3["maxWidth"], json!(6000));
        assert_eq!(v3["maxHeight"], json!(1000));
        let v2 = info.to_json(Version::V2);
        assert_eq!(
            v2["profile"][1],
            json!({ "maxWidth": 6000, "maxHeight": 1000 })
        );
    }

    #[test]
    fn feature_names_are_translated() {
        let mut info = ImageInfo::new("x", 1, 1, 2);
        info.extra_features = [
            "sizeUpscaling",
            "sizeByWh",
            "mirroring",
            "sizeByWhListed",
            "sizeAboveFull",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            info.to_json(Version::V2)["profile"][1]["supports"],
            json!([
                "sizeAboveFull",
                "sizeByWh",
                "sizeByDistortedWh",
                "mirroring",
                "sizeByWhListed"
            ])
        );
        assert_eq!(
            info.to_json(Version::V3)["extraFeatures"],
            json!(["sizeUpscaling", "sizeByWh", "mirroring"])
        );
    }

    #[test]
    fn limits_match_what_is_published() {
        let l = full_info().limits();
        assert_eq!(
            l,
            ImageLimits {
                width: 6000,
                height: 4000,
                max_width: Some(3000),
                max_height: Some(2000),
                max_area: Some(4_000_000)
            }
        );
    }

    #[test]
    fn pyramids() {
        assert_eq!(
            pyramid_sizes(6000, 4000, 4),
            vec![(750, 500), (1500, 1000), (3000, 2000), (6000, 4000)]
        );
        // Odd sizes round up, as tiles do: 1001 -> 501 -> 251.
        assert_eq!(
            pyramid_sizes(1001, 3, 3),
            vec![(251, 1), (501, 2), (1001, 3)]
        );
        // Stops at 1x1 without repeating it.
        assert_eq!(pyramid_sizes(4, 2, 10), vec![(1, 1), (2, 1), (4, 2)]);
        assert_eq!(pyramid_sizes(1, 1, 5), vec![(1, 1)]);
        assert!(pyramid_sizes(10, 10, 0).is_empty());
        assert!(pyramid_sizes(0, 10, 3).is_empty());
        assert_eq!(pyramid_sizes(u32::MAX, u32::MAX, 40).len(), 32);

        assert_eq!(pyramid_levels(6000, 4000, 100), 6);
        assert_eq!(pyramid_levels(6000, 4000, 188), 6);
        assert_eq!(pyramid_levels(6000, 4000, 189), 5);
        assert_eq!(pyramid_levels(50, 50, 100), 1);
        assert_eq!(pyramid_levels(4, 4, 0), 3);
        assert_eq!(pyramid_levels(u32::MAX, 1, 1), 32);
        assert_eq!(scale_factors(5), vec![1, 2, 4, 8, 16]);
        assert_eq!(scale_factors(40).len(), 32);
    }
}
