//! Scalar value parsers shared by the conf keys.

/// systemd's boolean spellings (parse_boolean in systemd's source).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// A Docker or sysbox version as it appears in the store's directory names:
/// starts with a digit; letters, digits, '.', '+', '~' and '-'; no "..".
pub fn check_version(value: &str) -> Result<(), String> {
    let well_formed = value.len() <= 40
        && value.starts_with(|c: char| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-'))
        && !value.contains("..");
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a version like 29.2.1 (a digit first, then letters, digits, '.', '+', '~', '-'; at most 40 characters){}",
            crate::network::comment_hint(value)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn versions() {
        assert!(check_version("29.2.1").is_ok());
        assert!(check_version("20.10.24+dfsg1").is_ok());
        for bad in ["", "v29", "29/../x", "29 2", "29.2.1$", "1..2"] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }
}
