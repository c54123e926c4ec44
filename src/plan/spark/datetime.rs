//! Spark's datetime patterns (`yyyy-MM-dd HH:mm:ss.SSS`, Java's `DateTimeFormatter` letters)
//! in `chrono`'s `strftime` letters (`%Y-%m-%d %H:%M:%S%.3f`), which DataFusion's `to_char`,
//! `to_date` and `to_timestamp` read.
//!
//! Pure: a pattern in, a pattern out, or what in it has no `chrono` spelling.

/// `pattern` (Spark's letters) in `chrono`'s letters.
pub fn chrono_pattern(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted text; '' is one quote.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        out.push('\'');
                        i += 2;
                        continue;
                    }
                    break;
                }
                literal(&mut out, chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal(&mut out, c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        out.push_str(letters(c, run).ok_or_else(|| {
            format!(
                "the pattern letter `{}` in '{pattern}' is not supported; use y M d H h m s S a E D Z X z",
                std::iter::repeat_n(c, run).collect::<String>()
            )
        })?);
        i += run;
    }
    Ok(out)
}

fn literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// `chrono`'s spelling of a run of `n` pattern letters `c`.
fn letters(c: char, n: usize) -> Option<&'static str> {
    Some(match (c, n) {
        ('y' | 'u', 2) => "%y",
        ('y' | 'u', _) => "%Y",
        ('M' | 'L', 1) => "%-m",
        ('M' | 'L', 2) => "%m",
        ('M' | 'L', 3) => "%b",
        ('M' | 'L', _) => "%B",
        ('d', 1) => "%-d",
        ('d', 2) => "%d",
        ('D', 1 | 2) => "%-j",
        ('D', 3) => "%j",
        ('H', 1) => "%-H",
        ('H', 2) => "%H",
        ('h', 1) => "%-I",
        ('h', 2) => "%I",
        ('m', 1) => "%-M",
        ('m', 2) => "%M",
        ('s', 1) => "%-S",
        ('s', 2) => "%S",
        ('S', 1..=3) => "%3f",
        ('S', 4..=6) => "%6f",
        ('S', 7..=9) => "%9f",
        ('a', 1) => "%p",
        ('E', 1..=3) => "%a",
        ('E', 4) => "%A",
        ('X' | 'x', 3) => "%:z",
        ('X' | 'x' | 'Z', 1 | 2) | ('Z', 3) => "%z",
        ('z', 1..=3) => "%Z",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_patterns_in_chrono_letters() {
        assert_eq!(
            chrono_pattern("yyyy-MM-dd HH:mm:ss").unwrap(),
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(
            chrono_pattern("yyyy-MM-dd'T'HH:mm:ss.SSSXXX").unwrap(),
            "%Y-%m-%dT%H:%M:%S.%3f%:z"
        );
        assert_eq!(chrono_pattern("dd/MM/yy h a").unwrap(), "%d/%m/%y %-I %p");
        assert_eq!(
            chrono_pattern("EEEE, MMM d ''yy 100%").unwrap(),
            "%A, %b %-d '%y 100%%"
        );
    }

    #[test]
    fn letters_without_a_spelling_are_named() {
        let err = chrono_pattern("yyyy QQ").unwrap_err();
        assert!(err.contains("`QQ`"), "{err}");
    }
}
