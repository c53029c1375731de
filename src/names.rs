//! Names people see: user and community names are NFKC-normalised, may not hide characters
//! (controls, zero-width and other invisible characters, bidi overrides, byte-order marks), and
//! are compared by a *skeleton* in the spirit of Unicode TS #39: case folded, and look-alike
//! letters (Latin, Cyrillic, Greek; `0`/`O`, `1`/`l`/`I`) mapped to one representative, so
//! "аlice" (Cyrillic а) or "aIice" cannot pose as "alice". The skeleton is the stored name key:
//! uniqueness, log-in by name and search all use it.

use unicode_normalization::UnicodeNormalization;

/// Why a name was refused (said of the name: the caller puts which name in front).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not contain invisible, control or direction-changing characters")]
    Hidden,
    #[error("must be 1-{0} characters")]
    Length(usize),
    #[error("must not have control characters or whitespace at the ends")]
    Edges,
}

/// A name people see (a user's or a community's) that passed every rule: NFKC-normalised,
/// 1..=`max` characters, nothing hidden, no whitespace at either end. Parse, don't validate:
/// holding one is the proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// The normalised name, or the first rule it breaks.
    pub fn parse(raw: &str, max: usize) -> Result<Self, NameError> {
        let name = normalize(raw)?;
        let chars = name.chars().count();
        if chars == 0 || chars > max {
            return Err(NameError::Length(max));
        }
        if name.trim() != name || name.chars().any(char::is_control) {
            return Err(NameError::Edges);
        }
        Ok(Self(name))
    }

    /// The name, for storage.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for DisplayName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Characters that show nothing or change how the text around them shows: controls, format
/// characters (zero-width, bidi embeddings and overrides, BOM, soft hyphen), fillers, variation
/// selectors and tags, private use, and whitespace other than the plain space.
pub fn is_hidden(c: char) -> bool {
    if c.is_control() || (c.is_whitespace() && c != ' ') {
        return true;
    }
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x2800 | 0x3164
        | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x0600..=0x0605 | 0x06DD
        | 0x070F | 0x08E2 | 0x110BD | 0x110CD | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE000..=0xF8FF | 0xE0000..=0xE0FFF | 0xF0000..=0x10FFFF)
}

/// The NFKC form of a name, or why it is refused. Length and edge whitespace are the caller's.
pub fn normalize(name: &str) -> Result<String, NameError> {
    let normal: String = name.nfkc().collect();
    if normal.chars().any(is_hidden) {
        return Err(NameError::Hidden);
    }
    Ok(normal)
}

/// The representative of a (lower-case) look-alike, if it has one.
fn prototype(c: char) -> Option<char> {
    Some(match c {
        // The i/l/1 family and the o/0 family.
        'i' | 'l' | '1' | '|' | 'ı' | 'ǀ' | 'і' | 'ӏ' | 'ι' | 'ɩ' | 'ⅰ' | 'ⅼ' => 'l',
        '0' | 'ο' | 'о' | 'օ' | 'σ' => 'o',
        // Cyrillic.
        'а' => 'a',
        'в' | 'ь' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ё' => 'e',
        'һ' | 'н' => 'h',
        'ј' | 'ϳ' => 'j',
        'к' | 'κ' => 'k',
        'м' => 'm',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'у' | 'γ' => 'y',
        'ԝ' | 'ѡ' => 'w',
        'х' | 'χ' => 'x',
        // Greek.
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'η' => 'n',
        'ν' => 'v',
        'υ' => 'u',
        'ζ' => 'z',
        _ => return None,
    })
}

/// The skeleton of a name: NFKC, lower case, look-alikes mapped. Two names with one skeleton
/// are confusable.
pub fn skeleton(name: &str) -> String {
    name.nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| prototype(c).unwrap_or(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_share_a_skeleton() {
        let alice = skeleton("alice");
        for fake in ["аlice", "aIice", "ALICE", "al1ce", "ａｌｉｃｅ", "alicе"] {
            assert_eq!(skeleton(fake), alice, "{fake}");
        }
        assert_ne!(skeleton("bob"), alice);
        assert_eq!(skeleton("Ρаураl"), skeleton("paypal"));
    }

    #[test]
    fn hidden_characters_are_refused() {
        for bad in [
            "a\u{200b}b",
            "\u{200b}",
            "\u{feff}x",
            "x\u{202e}y",
            "a\u{2066}b",
            "a\u{0}b",
        ] {
            assert_eq!(normalize(bad), Err(NameError::Hidden), "{bad:?}");
        }
        assert_eq!(normalize("ｆｕｌｌ").as_deref(), Ok("full"));
        assert_eq!(normalize("Zoë Ng").as_deref(), Ok("Zoë Ng"));
    }

    #[test]
    fn display_names_are_parsed_once() {
        let ok = DisplayName::parse("ｆｕｌｌ name", 32).map(DisplayName::into_string);
        assert_eq!(ok.as_deref(), Ok("full name"));
        assert_eq!(DisplayName::parse("", 32), Err(NameError::Length(32)));
        assert_eq!(DisplayName::parse("abcd", 3), Err(NameError::Length(3)));
        assert_eq!(DisplayName::parse(" bob", 32), Err(NameError::Edges));
        assert_eq!(DisplayName::parse("a\u{200b}", 32), Err(NameError::Hidden));
        assert_eq!(
            NameError::Length(32).to_string(),
            "must be 1-32 characters",
            "the HTTP layer puts the field's name in front"
        );
    }
}
