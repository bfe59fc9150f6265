use super::*;

/// A w×h RGB bitmap whose pixel (x, y) is (x, y, 7).
fn grid(w: u32, h: u32) -> Bitmap {
    let mut px = Vec::new();
    for y in 0..h {
        for x in 0..w {
            px.extend_from_slice(&[x as u8, y as u8, 7]);
        }
    }
    Bitmap::new(w, h, 3, px).unwrap()
}

fn out(w: u32, h: u32) -> Output {
    Output {
        width: w,
        height: h,
        rotate: 0,
        mirror: false,
        quality: Quality::Color,
        format: Format::Png,
        jpeg_quality: 85,
    }
}

fn at(b: &Bitmap, x: u32, y: u32) -> &[u8] {
    let c = b.channels as usize;
    let i = (y as usize * b.width as usize + x as usize) * c;
    &b.pixels[i..i + c]
}

#[test]
fn crop_without_resize_is_exact() {
    let src = grid(10, 8);
    let r = transform(
        &src,
        Some(Rect {
            x: 2,
            y: 3,
            w: 4,
            h: 2,
        }),
        &out(4, 2),
    )
    .unwrap();
    assert_eq!((r.width, r.height), (4, 2));
    assert_eq!(at(&r, 0, 0), &[2, 3, 7]);
    assert_eq!(at(&r, 3, 1), &[5, 4, 7]);
}

#[test]
fn rotations_and_mirror_move_corners_where_iiif_says() {
    let src = grid(4, 3);
    let turn = |deg, mirror| {
        let mut o = out(4, 3);
        o.rotate = deg;
        o.mirror = mirror;
        transform(&src, None, &o).unwrap()
    };
    let r90 = turn(90, false);
    assert_eq!((r90.width, r90.height), (3, 4));
    // Clockwise: the top-left corner goes to the top-right.
    assert_eq!(at(&r90, 2, 0), &[0, 0, 7]);
    let r180 = turn(180, false);
    assert_eq!(at(&r180, 3, 2), &[0, 0, 7]);
    let r270 = turn(270, false);
    assert_eq!(at(&r270, 0, 3), &[0, 0, 7]);
    let m = turn(0, true);
    assert_eq!(at(&m, 3, 0), &[0, 0, 7]);
    // Mirror first, then rotate: !90 puts the top-right corner at the top-right.
    let m90 = turn(90, true);
    assert_eq!(at(&m90, 2, 0), &[3, 0, 7]);
    assert!(matches!(
        transform(
            &src,
            None,
            &Output {
                rotate: 45,
                ..out(4, 3)
            }
        ),
        Err(RenderError::Unsupported(_))
    ));
}

#[test]
fn resize_gives_the_exact_size() {
    let src = grid(200, 100);
    for (w, h) in [(100, 50), (37, 11), (400, 200), (1, 1)] {
        let r = transform(&src, None, &out(w, h)).unwrap();
        assert_eq!(
            (r.width, r.height, r.pixels.len()),
            (w, h, (w * h * 3) as usize)
        );
    }
}

#[test]
fn gray_and_bitonal() {
    let src = Bitmap::new(2, 1, 3, vec![255, 255, 255, 10, 20, 30]).unwrap();
    let mut o = out(2, 1);
    o.quality = Quality::Gray;
    let g = transform(&src, None, &o).unwrap();
    assert_eq!((g.channels, g.pixels[0]), (1, 255));
    o.quality = Quality::Bitonal;
    assert_eq!(transform(&src, None, &o).unwrap().pixels, vec![255, 0]);
}

#[test]
fn every_format_encodes_with_its_signature() {
    let src = grid(64, 48);
    for (format, magic) in [
        (Format::Jpeg, &[0xFF, 0xD8, 0xFF][..]),
        (Format::Png, &[0x89, b'P', b'N', b'G'][..]),
        (Format::Webp, &b"RIFF"[..]),
    ] {
        let mut o = out(32, 24);
        o.format = format;
        let bytes = render(&src, None, &o).unwrap();
        assert!(bytes.starts_with(magic), "{format:?}");
        o.quality = Quality::Gray;
        assert!(render(&src, None, &o).unwrap().starts_with(magic));
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    assert!(Bitmap::new(2, 2, 3, vec![0; 5]).is_err());
    assert!(Bitmap::new(2, 2, 2, vec![0; 8]).is_err());
    let src = grid(4, 4);
    assert!(transform(
        &src,
        Some(Rect {
            x: 3,
            y: 0,
            w: 2,
            h: 1
        }),
        &out(1, 1)
    )
    .is_err());
    assert!(transform(&src, None, &out(0, 1)).is_err());
}

#[test]
fn a_jpeg_decodes_back_to_its_pixels_within_jpeg_loss() {
    // Smooth colour and gray ramps, where 4:2:0 and quality 90 lose a few levels at most.
    let ramp = |channels: u8| {
        let (w, h) = (96u32, 64u32);
        let mut px = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let rgb = [(x * 2) as u8, (y * 3) as u8, 128];
                px.extend_from_slice(&rgb[..usize::from(channels)]);
            }
        }
        Bitmap::new(w, h, channels, px).unwrap()
    };
    for channels in [1, 3] {
        let src = ramp(channels);
        let bytes = encode(&src, Format::Jpeg, 90).unwrap();
        let back = decode_jpeg(&bytes, 1 << 20).unwrap();
        assert_eq!((back.width, back.height, back.channels), (96, 64, channels));
        let worst = src
            .pixels
            .iter()
            .zip(&back.pixels)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 6, "{channels} channels: a level {worst} off");
    }
}

#[test]
fn a_bitmap_jpeg_cannot_hold_is_an_error_not_a_panic() {
    // The fields are public, so a bitmap can disagree with itself; and JPEG stops at 65535.
    let raw = |width, height, channels, len| Bitmap {
        width,
        height,
        channels,
        pixels: vec![0; len],
    };
    assert!(encode(&raw(4, 4, 3, 10), Format::Jpeg, 85).is_err());
    assert!(encode(&raw(2, 2, 2, 8), Format::Jpeg, 85).is_err());
    let e = encode(&raw(70_000, 1, 1, 70_000), Format::Jpeg, 85)
        .unwrap_err()
        .to_string();
    assert!(e.contains("65535"), "{e}");
}
