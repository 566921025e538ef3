//! A minimal PNG encoder (8-bit RGB, no interlace, filter type 0 on every row) and base64, so CAM
//! overlays can be embedded in SVG as `data:image/png;base64,...` URIs that a browser scales
//! crisply (`image-rendering: pixelated`) without a rect per pixel.
//!
//! Layout follows the PNG specification (ISO/IEC 15948): signature, IHDR, one zlib-compressed
//! IDAT, IEND; each chunk is `length (u32 BE) | type | data | CRC-32 (type + data)`.

use std::io::Write;

use flate2::write::ZlibEncoder;
use flate2::Compression;

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) as PNG chunks use it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// Encode `rgb` (row-major, `width * height * 3` bytes) as PNG. Panics if the length is wrong
/// (an internal invariant: callers build the buffer from the same width and height).
pub fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> Vec<u8> {
    let row = width as usize * 3;
    assert_eq!(rgb.len(), row * height as usize, "RGB buffer size");
    let mut raw = Vec::with_capacity((row + 1) * height as usize);
    for r in rgb.chunks(row.max(1)).take(height as usize) {
        raw.push(0); // filter type None
        raw.extend_from_slice(r);
    }
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&raw).expect("writing to a Vec cannot fail");
    let idat = z.finish().expect("writing to a Vec cannot fail");

    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // bit depth 8, colour type RGB, deflate, filter 0, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// `png` with a `pHYs` chunk of `dpi` pixels per inch (as pixels per metre, unit 1) inserted
/// right after IHDR (the specification puts pHYs before the first IDAT). Panics if `png` does not
/// start with a signature and an IHDR chunk (an internal invariant: callers pass encoder output).
pub fn set_png_dpi(png: &[u8], dpi: f32) -> Vec<u8> {
    assert!(png.len() >= 33 && &png[12..16] == b"IHDR", "not a PNG");
    let ppm = (f64::from(dpi) / 0.0254).round() as u32;
    let mut phys = Vec::with_capacity(9);
    phys.extend_from_slice(&ppm.to_be_bytes());
    phys.extend_from_slice(&ppm.to_be_bytes());
    phys.push(1); // unit: metre
    let mut out = png[..33].to_vec();
    chunk(&mut out, b"pHYs", &phys);
    out.extend_from_slice(&png[33..]);
    out
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(ABC[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `data:` URI of a PNG.
pub fn png_data_uri(width: u32, height: u32, rgb: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64(&encode_rgb(width, height, rgb))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn crc32_known_values() {
        // Check value of CRC-32/ISO-HDLC (catalogue of parametrised CRC algorithms).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        // Every PNG ends with the IEND chunk CRC AE 42 60 82 (PNG specification).
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn base64_rfc4648_vectors() {
        // RFC 4648 section 10 test vectors.
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn png_structure_and_pixels_round_trip() {
        let (w, h) = (3u32, 2u32);
        let rgb: Vec<u8> = (0..18).map(|v| v * 13).collect();
        let png = encode_rgb(w, h, &rgb);
        assert_eq!(&png[..8], &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), w);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), h);
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&png[41..41 + idat_len])
            .read_to_end(&mut raw)
            .unwrap();
        let mut want = vec![0u8];
        want.extend_from_slice(&rgb[..9]);
        want.push(0);
        want.extend_from_slice(&rgb[9..]);
        assert_eq!(raw, want);
        assert_eq!(
            &png[png.len() - 8..],
            &[b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]
        );
    }
}
