//! Splitting a command line as supervisord and circus do (Python's `shlex.split`,
//! POSIX mode), and the marks an environment reference travels in until it is written
//! as `{{ env.NAME }}`.

/// Opens a reference to launch's environment inside an imported value.
pub const ENV_OPEN: char = '\u{E200}';
/// Closes it.
pub const ENV_CLOSE: char = '\u{E201}';
/// Stands for the copy's number (`$(circus.wid)`, `%(process_num)d`) until
/// [`super::copies::resolve`] knows how many copies there are.
pub const INSTANCE: char = '\u{E202}';

/// A reference to the variable `name`, when `name` can be written as `env.NAME`.
pub fn env_ref(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let first = chars.next()?;
    let word = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    word.then(|| format!("{ENV_OPEN}{name}{ENV_CLOSE}"))
}

/// Splits `text` into words as `shlex.split` does: whitespace separates; `'...'` is
/// literal; in `"..."` a backslash escapes only `\ " $` and a backquote; outside quotes
/// it escapes any character. `Err` says what is unbalanced.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a ' that never closes".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('\\' | '"' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a \" that never closes".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a \" that never closes".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("a \\ at the very end".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_shlex() {
        let cases: &[(&str, &[&str])] = &[
            ("a b  c", &["a", "b", "c"]),
            ("nginx -g 'daemon off;'", &["nginx", "-g", "daemon off;"]),
            (
                r#"sh -c "echo \"hi\" \n""#,
                &["sh", "-c", "echo \"hi\" \\n"],
            ),
            (r"a\ b", &["a b"]),
            ("'' x", &["", "x"]),
            ("a\n  b", &["a", "b"]),
        ];
        for (text, want) in cases {
            assert_eq!(split(text).unwrap(), *want, "{text:?}");
        }
    }

    #[test]
    fn an_open_quote_is_an_error() {
        for text in ["'a", "\"a", "a\\"] {
            assert!(split(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn only_plain_names_become_references() {
        assert_eq!(env_ref("HOME"), Some(format!("{ENV_OPEN}HOME{ENV_CLOSE}")));
        assert_eq!(env_ref("A-B"), None);
        assert_eq!(env_ref("1A"), None);
    }
}
