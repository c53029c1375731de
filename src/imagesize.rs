//! Pixel dimensions read from the header of a PNG, GIF, WebP or JPEG file. Uploads keep them in
//! their file name, so a page can reserve an image's box before the image has loaded (and the
//! chat does not jump when it arrives).

/// How much of a file's start is read for its dimensions (a JPEG's frame header may follow
/// large metadata blocks).
pub const HEAD_LEN: usize = 64 * 1024;

/// The largest side accepted in a file name; anything larger is not recorded.
pub const MAX_SIDE: u32 = 65_535;

/// Width and height in pixels, if the header says (and both are 1..=[`MAX_SIDE`]).
pub fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    let (w, h) = if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        png(head)?
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        (u16_le(head, 6)? as u32, u16_le(head, 8)? as u32)
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        webp(head)?
    } else if head.starts_with(b"\xff\xd8\xff") {
        jpeg(head)?
    } else {
        return None;
    };
    ((1..=MAX_SIDE).contains(&w) && (1..=MAX_SIDE).contains(&h)).then_some((w, h))
}

fn png(head: &[u8]) -> Option<(u32, u32)> {
    if head.get(12..16)? != b"IHDR" {
        return None;
    }
    Some((u32_be(head, 16)?, u32_be(head, 20)?))
}

fn webp(head: &[u8]) -> Option<(u32, u32)> {
    match head.get(12..16)? {
        b"VP8 " => {
            // Key frame: start code 9d 01 2a, then 14-bit width and height.
            if head.get(23..26)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            Some((
                (u16_le(head, 26)? & 0x3fff) as u32,
                (u16_le(head, 28)? & 0x3fff) as u32,
            ))
        }
        b"VP8L" => {
            if *head.get(20)? != 0x2f {
                return None;
            }
            let b = head.get(21..25)?;
            let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        b"VP8X" => {
            let b = head.get(24..30)?;
            let w = u32::from_le_bytes([b[0], b[1], b[2], 0]) + 1;
            let h = u32::from_le_bytes([b[3], b[4], b[5], 0]) + 1;
            Some((w, h))
        }
        _ => None,
    }
}

fn jpeg(head: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    loop {
        // Markers may be padded with any number of 0xff bytes.
        while *head.get(i)? == 0xff && *head.get(i + 1)? == 0xff {
            i += 1;
        }
        if *head.get(i)? != 0xff {
            return None;
        }
        let marker = *head.get(i + 1)?;
        match marker {
            // Standalone markers carry no length.
            0x01 | 0xd0..=0xd7 => {
                i += 2;
                continue;
            }
            // Start of frame (not DHT c4, JPG c8, DAC cc): precision, height, width.
            0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => {
                let h = u16_be(head, i + 5)? as u32;
                let w = u16_be(head, i + 7)? as u32;
                return Some((w, h));
            }
            // Start of scan or end of image before any frame header: malformed.
            0xd9 | 0xda => return None,
            _ => {
                let len = u16_be(head, i + 2)? as usize;
                if len < 2 {
                    return None;
                }
                i += 2 + len;
            }
        }
    }
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u16_be(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_format() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&96u32.to_be_bytes());
        png.extend_from_slice(&64u32.to_be_bytes());
        assert_eq!(dimensions(&png), Some((96, 64)));

        let gif = b"GIF89a\x40\x01\xc8\x00\0\0";
        assert_eq!(dimensions(gif), Some((320, 200)));

        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0x3f, 0x01, 0x00, 0xef, 0x00, 0x00]); // 320 x 240
        assert_eq!(dimensions(&vp8x), Some((320, 240)));

        let mut vp8l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        let bits: u32 = (10 - 1) | ((20 - 1) << 14);
        vp8l.extend_from_slice(&bits.to_le_bytes());
        assert_eq!(dimensions(&vp8l), Some((10, 20)));

        // SOI, an APP0 block of 16 bytes, then SOF0: precision 8, height 480, width 640.
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
        jpeg.extend_from_slice(&[0; 14]);
        jpeg.extend_from_slice(&[0xff, 0xc0, 0x00, 0x11, 0x08, 0x01, 0xe0, 0x02, 0x80]);
        assert_eq!(dimensions(&jpeg), Some((640, 480)));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(dimensions(b""), None);
        assert_eq!(dimensions(b"\xff\xd8\xff\xe0\xff\xff"), None);
        assert_eq!(dimensions(b"\xff\xd8\xff\xe0\x00\x00"), None);
        assert_eq!(dimensions(b"GIF89a\0\0\x01\0"), None, "zero width");
        assert_eq!(dimensions(b"<svg/>"), None);
    }
}
