//! What a message carries, as the protocol names it and storage keeps it. Its own module, below
//! both [`crate::frame`] and [`crate::store`], so neither imports the other for it.

use serde::{Deserialize, Serialize};

/// What a message carries. Only `text` and `emoji` are free text; the others are URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    Text,
    Emoji,
    Image,
    Audio,
    File,
}

impl Media {
    /// The name stored in `messages.media`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Emoji => "emoji",
            Self::Image => "image",
            Self::Audio => "audio",
            Self::File => "file",
        }
    }

    /// The media named by a stored row; unknown names read as text.
    pub fn from_stored(s: &str) -> Self {
        match s {
            "emoji" => Self::Emoji,
            "image" => Self::Image,
            "audio" => Self::Audio,
            "file" => Self::File,
            _ => Self::Text,
        }
    }
}
