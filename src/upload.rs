//! Image uploads: the type is decided by the bytes (png, jpeg, gif, webp), never by the client's
//! file name or header; the body is streamed to disk and cut off at the cap; stored names are
//! `<uuid v4>.<ext>` and nothing else is ever served from the folder.

use std::path::{Path, PathBuf};

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// The image kinds Chorus accepts and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
    Gif,
    Webp,
}

/// Bytes needed to tell the types apart.
const SNIFF_LEN: usize = 12;

impl ImageType {
    /// Decides the type from the first bytes of the file.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        match head {
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            _ => None,
        }
    }

    /// The extension of stored files of this type.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    /// The `Content-Type` it is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    fn from_extension(ext: &str) -> Option<Self> {
        [Self::Png, Self::Jpeg, Self::Gif, Self::Webp]
            .into_iter()
            .find(|t| t.extension() == ext)
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("file is over the {0}-byte limit")]
    TooLarge(u64),
    #[error("only png, jpeg, gif and webp images are accepted")]
    NotAnImage,
    #[error("the upload was empty")]
    Empty,
    #[error("reading the upload: {0}")]
    Body(String),
    #[error("writing the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// The dimensions of a file just written, from its first bytes (`None` if unreadable).
async fn read_dimensions(path: &Path) -> Option<(u32, u32)> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await.ok()?;
    let mut head = Vec::with_capacity(crate::imagesize::HEAD_LEN);
    file.take(crate::imagesize::HEAD_LEN as u64)
        .read_to_end(&mut head)
        .await
        .ok()?;
    crate::imagesize::dimensions(&head)
}

/// `<w>x<h>` as written in a file name: canonical decimals in 1..=MAX_SIDE, nothing else.
pub fn parse_dimensions(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.split_once('x')?;
    let side = |v: &str| {
        let n: u32 = v.parse().ok()?;
        (n.to_string() == v && (1..=crate::imagesize::MAX_SIDE).contains(&n)).then_some(n)
    };
    Some((side(w)?, side(h)?))
}

/// A file that was stored.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub id: Uuid,
    pub file_name: String,
    pub image_type: ImageType,
    pub size: u64,
    /// Width and height in pixels, when the header tells (also part of `file_name`).
    pub dimensions: Option<(u32, u32)>,
}

/// The uploads folder and its cap.
#[derive(Debug, Clone)]
pub struct Uploads {
    dir: PathBuf,
    max_bytes: u64,
}

impl Uploads {
    /// Uses `dir`, creating it when missing.
    pub fn new(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
        })
    }

    /// The largest file accepted.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Streams a body to a temporary file, then keeps it under its final name if it is an
    /// image within the cap. Nothing is left behind on refusal.
    pub async fn store<S, B, E>(&self, mut body: S) -> Result<StoredFile, UploadError>
    where
        S: Stream<Item = Result<B, E>> + Unpin,
        B: Buf,
        E: std::fmt::Display,
    {
        let id = Uuid::new_v4();
        let tmp = self.dir.join(format!(".{id}.part"));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            let mut head = Vec::with_capacity(SNIFF_LEN);
            let mut size: u64 = 0;
            while let Some(chunk) = body.next().await {
                let mut chunk = chunk.map_err(|e| UploadError::Body(e.to_string()))?;
                while chunk.has_remaining() {
                    let bytes = chunk.chunk();
                    let n = bytes.len();
                    size += n as u64;
                    if size > self.max_bytes {
                        return Err(UploadError::TooLarge(self.max_bytes));
                    }
                    if head.len() < SNIFF_LEN {
                        let take = (SNIFF_LEN - head.len()).min(n);
                        head.extend_from_slice(&bytes[..take]);
                        if head.len() == SNIFF_LEN && ImageType::sniff(&head).is_none() {
                            return Err(UploadError::NotAnImage);
                        }
                    }
                    file.write_all(bytes).await?;
                    chunk.advance(n);
                }
            }
            if size == 0 {
                return Err(UploadError::Empty);
            }
            let image_type = ImageType::sniff(&head).ok_or(UploadError::NotAnImage)?;
            file.sync_all().await?;
            drop(file);
            let dimensions = read_dimensions(&tmp).await;
            Ok((image_type, size, dimensions))
        }
        .await;
        match result {
            Ok((image_type, size, dimensions)) => {
                // `<uuid>.<w>x<h>.<ext>`: the size travels with the URL, so a page reserves
                // the image's box before it loads.
                let file_name = match dimensions {
                    Some((w, h)) => format!("{id}.{w}x{h}.{}", image_type.extension()),
                    None => format!("{id}.{}", image_type.extension()),
                };
                tokio::fs::rename(&tmp, self.dir.join(&file_name)).await?;
                Ok(StoredFile {
                    id,
                    file_name,
                    image_type,
                    size,
                    dimensions,
                })
            }
            Err(err) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(err)
            }
        }
    }

    /// The path and type of a stored file, only for names Chorus itself gives
    /// (`<uuid>.<ext>` or `<uuid>.<w>x<h>.<ext>`, lower-case, hyphenated, sizes without
    /// leading zeros): no other name can reach the disk.
    pub fn resolve(&self, name: &str) -> Option<(PathBuf, ImageType)> {
        let (stem, rest) = name.split_once('.')?;
        let ext = match rest.split_once('.') {
            Some((size, ext)) => {
                parse_dimensions(size)?;
                ext
            }
            None => rest,
        };
        let image_type = ImageType::from_extension(ext)?;
        let id = Uuid::parse_str(stem).ok()?;
        if id.hyphenated().to_string() != stem {
            return None;
        }
        Some((self.dir.join(name), image_type))
    }

    /// Whether `name` is a stored upload (well-formed *and* on disk): messages and avatars may
    /// only point at images that exist.
    pub async fn exists(&self, name: &str) -> bool {
        match self.resolve(name) {
            Some((path, _)) => tokio::fs::metadata(path).await.is_ok_and(|m| m.is_file()),
            None => false,
        }
    }

    /// Removes a stored file (when its record could not be written).
    pub async fn discard(&self, file_name: &str) {
        if let Some((path, _)) = self.resolve(file_name) {
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_bytes_only() {
        assert_eq!(
            ImageType::sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(ImageType::Png)
        );
        assert_eq!(
            ImageType::sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"),
            Some(ImageType::Jpeg)
        );
        assert_eq!(
            ImageType::sniff(b"GIF89a\x01\0\x01\0\0\0"),
            Some(ImageType::Gif)
        );
        assert_eq!(
            ImageType::sniff(b"RIFF\x24\0\0\0WEBPVP8 "),
            Some(ImageType::Webp)
        );
        assert_eq!(
            ImageType::sniff(b"<svg xmlns='http://www.w3.org/2000/svg'>"),
            None
        );
        assert_eq!(ImageType::sniff(b"<html><script>"), None);
        assert_eq!(ImageType::sniff(b"RIFF\x24\0\0\0WAVEfmt "), None);
    }

    #[test]
    fn only_our_own_names_resolve() {
        let uploads = Uploads {
            dir: PathBuf::from("/srv/uploads"),
            max_bytes: 10,
        };
        let id = Uuid::new_v4();
        assert!(uploads.resolve(&format!("{id}.png")).is_some());
        assert!(uploads.resolve(&format!("{id}.96x64.png")).is_some());
        for bad in [
            format!("{id}.096x64.png"),
            format!("{id}.0x64.png"),
            format!("{id}.96x64x1.png"),
            format!("{id}.96X64.png"),
            format!("{id}.65536x1.png"),
            format!("{id}.96x64.png.png"),
            format!("{id}..png"),
            "../Cargo.toml".to_owned(),
            format!("{id}.html"),
            format!("{id}.png.html"),
            format!("{}.png", id.simple()),
            format!("{}.png", id.hyphenated().to_string().to_uppercase()),
            "..".to_owned(),
            format!("../{id}.png"),
        ] {
            assert!(uploads.resolve(&bad).is_none(), "{bad} resolved");
        }
    }
}
