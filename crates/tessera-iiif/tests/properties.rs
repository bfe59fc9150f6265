//! Property tests of the size arithmetic and the parser.
//!
//! The unit tests pin the spec's examples; these check the promises that must hold for *every*
//! image, region and size: fits stay inside their box and touch it, aspect ratios are kept to
//! within a pixel, 3.0 never upscales without `^`, percentages round as documented, nothing is
//! smaller than a pixel or over a limit, canonical forms are fixed points, and no input string,
//! however malformed, makes parse-then-resolve panic.

use proptest::prelude::*;
use tessera_iiif::{ImageLimits, ImageRequest, Size, SizeParam, Version};

/// Image or region sides: mostly ordinary, sometimes tiny, sometimes enormous.
fn side() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 1u32..=10_000,
        2 => 1u32..=16,
        1 => 1u32..=u32::MAX,
        1 => Just(u32::MAX),
    ]
}

/// A requested dimension (`w` of `w,` and so on).
fn dim() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 1u32..=20_000, 1 => 1u32..=u32::MAX]
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![Just(Version::V2), Just(Version::V3)]
}

/// (version, upscale) pairs that exist: `^` only in 3.0.
fn version_caret() -> impl Strategy<Value = (Version, bool)> {
    prop_oneof![
        Just((Version::V2, false)),
        Just((Version::V3, false)),
        Just((Version::V3, true)),
    ]
}

fn no_limits(rw: u32, rh: u32) -> ImageLimits {
    ImageLimits::new(rw, rh)
}

/// Limits, often absent, sometimes degenerate.
fn limits(width: u32, height: u32) -> impl Strategy<Value = ImageLimits> {
    let lim = || prop_oneof![2 => Just(None), 2 => (1u32..=20_000).prop_map(Some), 1 => (0u32..=4).prop_map(Some)];
    let area = prop_oneof![
        2 => Just(None),
        2 => (1u64..=100_000_000).prop_map(Some),
        1 => (0u64..=16).prop_map(Some),
    ];
    (lim(), lim(), area).prop_map(move |(max_width, max_height, max_area)| ImageLimits {
        width,
        height,
        max_width,
        max_height,
        max_area,
    })
}

fn resolve(
    v: Version,
    kind: Size,
    upscale: bool,
    rw: u32,
    rh: u32,
    l: &ImageLimits,
) -> Result<(u32, u32), tessera_iiif::IiifError> {
    SizeParam { kind, upscale }.resolve(v, rw, rh, l)
}

/// How far `(w, h)` is from the region's aspect ratio, in pixels of the derived side: the
/// smaller of the height error given the width and the width error given the height.
fn aspect_error(w: u32, h: u32, rw: u32, rh: u32) -> f64 {
    let (w, h, rw, rh) = (w as f64, h as f64, rw as f64, rh as f64);
    let dh = (h - rh * w / rw).abs();
    let dw = (w - rw * h / rh).abs();
    dh.min(dw)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// `!w,h` fits inside the box, touches one side of it (of the box capped at the region in
    /// 3.0 without ^), keeps the aspect ratio within a pixel, and is at least 1x1.
    #[test]
    fn best_fit_fits_and_touches(
        (v, caret) in version_caret(),
        rw in side(), rh in side(), bw in dim(), bh in dim(),
    ) {
        let (w, h) = resolve(v, Size::BestFit(bw, bh), caret, rw, rh, &no_limits(rw, rh)).unwrap();
        prop_assert!(w >= 1 && h >= 1);
        prop_assert!(w <= bw && h <= bh, "{w}x{h} outside !{bw},{bh}");
        let (cw, ch) = if v == Version::V3 && !caret { (bw.min(rw), bh.min(rh)) } else { (bw, bh) };
        prop_assert!(w == cw || h == ch, "{w}x{h} touches neither side of {cw}x{ch}");
        // The exact side is exact, so the error is in the other one; the clamp to one pixel
        // can add at most one more pixel.
        prop_assert!(aspect_error(w, h, rw, rh) < 1.0 || w == 1 || h == 1,
            "{w}x{h} for region {rw}x{rh}");
    }

    /// `w,` and `,h` set their side exactly and derive the other within half a pixel (or one
    /// pixel where the exact value is below 1 and is clamped up).
    #[test]
    fn width_and_height_keep_the_aspect_ratio(
        (v, caret) in version_caret(),
        rw in side(), rh in side(), n in dim(),
    ) {
        let l = no_limits(rw, rh);
        if let Ok((w, h)) = resolve(v, Size::Width(n), caret, rw, rh, &l) {
            prop_assert_eq!(w, n);
            let exact = rh as f64 * n as f64 / rw as f64;
            prop_assert!((h as f64 - exact).abs() <= 0.5 + 1e-9 || (h == 1 && exact < 1.0));
            prop_assert!(aspect_error(w, h, rw, rh) < 1.0);
        }
        if let Ok((w, h)) = resolve(v, Size::Height(n), caret, rw, rh, &l) {
            prop_assert_eq!(h, n);
            let exact = rw as f64 * n as f64 / rh as f64;
            prop_assert!((w as f64 - exact).abs() <= 0.5 + 1e-9 || (w == 1 && exact < 1.0));
            prop_assert!(aspect_error(w, h, rw, rh) < 1.0);
        }
    }

    /// In 3.0 without ^, no size form produces an image larger than the region; with ^ or in
    /// 2.1 the only refusals for `w,` are "too large for u32" (no limits here).
    #[test]
    fn v3_without_caret_never_upscales(
        rw in side(), rh in side(), a in dim(), b in dim(), pct in 0.001f64..=100.0,
        which in 0usize..6,
    ) {
        let kind = [
            Size::Max, Size::Width(a), Size::Height(b), Size::Percent(pct),
            Size::Exact(a, b), Size::BestFit(a, b),
        ][which];
        match resolve(Version::V3, kind, false, rw, rh, &no_limits(rw, rh)) {
            Ok((w, h)) => prop_assert!(w <= rw && h <= rh, "{kind:?} on {rw}x{rh}: {w}x{h}"),
            Err(e) => prop_assert!(e.message.contains("^ is required"), "{kind:?}: {e}"),
        }
    }

    /// `pct:n` is `round(region * n / 100)` on each axis, at least 1.
    #[test]
    fn percent_matches_the_rounding_rule(
        (v, caret) in version_caret(),
        rw in side(), rh in side(), n in 0.001f64..=400.0,
    ) {
        let n = if v == Version::V3 && !caret { n.min(100.0) } else { n };
        let expect = |side: u32| ((side as f64 * n / 100.0).round() as u64).max(1);
        match resolve(v, Size::Percent(n), caret, rw, rh, &no_limits(rw, rh)) {
            Ok((w, h)) => {
                prop_assert_eq!(u64::from(w), expect(rw));
                prop_assert_eq!(u64::from(h), expect(rh));
            }
            Err(e) => {
                prop_assert!(e.message.contains("too large"), "{e}");
                prop_assert!(expect(rw) > u64::from(u32::MAX) || expect(rh) > u64::from(u32::MAX));
            }
        }
    }

    /// Under any limits, every successful size is at least 1x1 and within every limit, and
    /// `max` never upscales and keeps the aspect ratio within a pixel (unless a limit squeezes
    /// a side to one pixel).
    #[test]
    fn results_are_at_least_one_pixel_and_within_limits(
        (v, caret) in version_caret(),
        rw in side(), rh in side(),
        l in limits(1, 1),
        a in dim(), b in dim(), pct in 0.001f64..=400.0, which in 0usize..7,
    ) {
        let kind = [
            Size::Max, Size::Full, Size::Width(a), Size::Height(b), Size::Percent(pct),
            Size::Exact(a, b), Size::BestFit(a, b),
        ][which];
        let l = ImageLimits { width: rw, height: rh, ..l };
        if let Ok((w, h)) = resolve(v, kind, caret, rw, rh, &l) {
            prop_assert!(w >= 1 && h >= 1);
            prop_assert!(l.allows(w, h), "{kind:?} on {rw}x{rh} under {l:?}: {w}x{h}");
            if kind == Size::Max && !caret {
                prop_assert!(w <= rw && h <= rh);
            }
            if matches!(kind, Size::Max | Size::BestFit(..)) {
                prop_assert!(aspect_error(w, h, rw, rh) < 1.0 || w == 1 || h == 1,
                    "{kind:?} on {rw}x{rh} under {l:?}: {w}x{h}");
            }
        }
    }

    /// `max` and `!w,h` shrink to fit limits rather than fail, except when a limit leaves no
    /// room for even one pixel of the thin side.
    #[test]
    fn max_fits_sensible_limits(
        (v, caret) in version_caret(),
        rw in 1u32..=10_000, rh in 1u32..=10_000,
        mw in 1u32..=10_000, mh in 1u32..=10_000, area in 10_000u64..=100_000_000,
    ) {
        let l = ImageLimits { width: rw, height: rh, max_width: Some(mw), max_height: Some(mh), max_area: Some(area) };
        let (w, h) = resolve(v, Size::Max, caret, rw, rh, &l).unwrap();
        prop_assert!(w <= mw && h <= mh && u64::from(w) * u64::from(h) <= area);
        // It is as large as the limits allow: growing the exact side by one pixel, with the
        // other side following exactly, breaks a limit (or the region, without ^).
        let (fw, fh, frw, frh) = (w as f64, h as f64, rw as f64, rh as f64);
        let breaks = |gw: f64, gh: f64| {
            let eps = 1e-7;
            gw > mw as f64 + eps
                || gh > mh as f64 + eps
                || gw * gh > area as f64 + eps
                || (!caret && (gw > frw + eps || gh > frh + eps))
        };
        let grow_w = breaks(fw + 1.0, frh * (fw + 1.0) / frw);
        let grow_h = breaks(frw * (fh + 1.0) / frh, fh + 1.0);
        prop_assert!(grow_w || grow_h,
            "{w}x{h} could grow (region {rw}x{rh}, limits {l:?})");
    }

    /// The canonical form resolves to the same thing, and is its own canonical form.
    #[test]
    fn canonical_is_a_fixed_point(
        v in version(),
        iw in 1u32..=5000, ih in 1u32..=5000,
        l in limits(1, 1),
        path in request_path(),
    ) {
        let image = ImageLimits { width: iw, height: ih, ..l };
        if let Ok(first) = ImageRequest::parse(v, &path).and_then(|r| r.resolve(v, &image)) {
            let canon = first.canonical(v, &image);
            let again = ImageRequest::parse(v, &canon).and_then(|r| r.resolve(v, &image));
            prop_assert!(again.is_ok(), "{path} -> {canon}: {again:?}");
            let again = again.unwrap();
            prop_assert_eq!(again, first, "{} -> {}", path, canon);
            prop_assert_eq!(again.canonical(v, &image), canon);
        }
    }

    /// Resolved regions are inside the image and not empty.
    #[test]
    fn regions_stay_inside_the_image(
        v in version(), iw in side(), ih in side(), path in request_path(),
    ) {
        let image = ImageLimits::new(iw, ih);
        if let Ok(r) = ImageRequest::parse(v, &path).and_then(|r| r.resolve(v, &image)) {
            let g = r.region;
            prop_assert!(g.w >= 1 && g.h >= 1);
            prop_assert!(u64::from(g.x) + u64::from(g.w) <= u64::from(iw));
            prop_assert!(u64::from(g.y) + u64::from(g.h) <= u64::from(ih));
        }
    }

    /// Nothing panics, for any string at all.
    #[test]
    fn arbitrary_strings_never_panic(
        v in version(), iw in side(), ih in side(), l in limits(1, 1), path in any::<String>(),
    ) {
        let image = ImageLimits { width: iw, height: ih, ..l };
        let _ = ImageRequest::parse(v, &path).and_then(|r| r.resolve(v, &image));
    }

    /// Nothing panics for strings made of IIIF's own characters, which get far deeper into the
    /// parser than arbitrary text does.
    #[test]
    fn iiif_like_strings_never_panic(
        v in version(), iw in side(), ih in side(), l in limits(1, 1),
        path in "[0-9,.:!^%/a-z]{0,48}",
    ) {
        let image = ImageLimits { width: iw, height: ih, ..l };
        let _ = ImageRequest::parse(v, &path).and_then(|r| r.resolve(v, &image));
    }

    /// Nothing panics for well-shaped requests with extreme numbers in every slot.
    #[test]
    fn structured_requests_never_panic(
        v in version(), iw in side(), ih in side(), l in limits(1, 1), path in request_path(),
    ) {
        let image = ImageLimits { width: iw, height: ih, ..l };
        if let Ok(r) = ImageRequest::parse(v, &path).and_then(|r| r.resolve(v, &image)) {
            let _ = r.canonical(v, &image);
            let _ = r.output_size();
        }
    }
}

/// Request paths built from the grammar's pieces, with numbers from tiny to absurd.
fn request_path() -> impl Strategy<Value = String> {
    let int = || {
        prop_oneof![
            4 => (0u64..=6000).prop_map(|n| n.to_string()),
            1 => (0u64..=u64::from(u32::MAX) + 10).prop_map(|n| n.to_string()),
            1 => Just(String::new()),
        ]
    };
    let dec = || {
        prop_oneof![
            3 => (0u32..=120).prop_map(|n| n.to_string()),
            3 => (0.0f64..=150.0).prop_map(|f| format!("{f:.3}")),
            1 => Just("999999999999999999999".to_string()),
            1 => Just("0".to_string()),
        ]
    };
    let region = prop_oneof![
        Just("full".to_string()),
        Just("square".to_string()),
        (int(), int(), int(), int()).prop_map(|(x, y, w, h)| format!("{x},{y},{w},{h}")),
        (dec(), dec(), dec(), dec()).prop_map(|(x, y, w, h)| format!("pct:{x},{y},{w},{h}")),
    ];
    let form = prop_oneof![
        Just("max".to_string()),
        Just("full".to_string()),
        int().prop_map(|w| format!("{w},")),
        int().prop_map(|h| format!(",{h}")),
        dec().prop_map(|n| format!("pct:{n}")),
        (int(), int()).prop_map(|(w, h)| format!("{w},{h}")),
        (int(), int()).prop_map(|(w, h)| format!("!{w},{h}")),
    ];
    let size = (any::<bool>(), form).prop_map(|(caret, f)| if caret { format!("^{f}") } else { f });
    let rotation = (any::<bool>(), dec()).prop_map(|(m, d)| if m { format!("!{d}") } else { d });
    let quality = prop_oneof![
        Just("default"),
        Just("color"),
        Just("gray"),
        Just("bitonal")
    ];
    let format = prop_oneof![
        Just("jpg"),
        Just("png"),
        Just("webp"),
        Just("tif"),
        Just("jp2")
    ];
    (region, size, rotation, quality, format)
        .prop_map(|(r, s, rot, q, f)| format!("{r}/{s}/{rot}/{q}.{f}"))
}
