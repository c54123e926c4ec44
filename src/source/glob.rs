//! Hadoop's glob patterns, as Spark uses them for `pathGlobFilter` and for globs in the source
//! path: `*` (any run of characters within one name), `?` (one character), `[abc]`, `[a-z]`,
//! `[^a]` / `[!a]`, `{a,b}` (either), and `\` escaping the next character. Pure.

/// Does `text` (one name, or a path when the pattern has the same number of `/` parts) match
/// `pattern`?
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    expand(&p).iter().any(|alt| match_here(alt, &t))
}

/// Is there a glob character in `text`?
pub fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

/// `{a,b}` alternatives expanded into whole patterns (nested braces too).
fn expand(p: &[char]) -> Vec<Vec<char>> {
    let mut depth = 0;
    let mut open = None;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => i += 1,
            '{' => {
                if depth == 0 {
                    open = Some(i);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    if let Some(start) = open {
                        let (head, tail) = (&p[..start], &p[i + 1..]);
                        return split_alternatives(&p[start + 1..i])
                            .into_iter()
                            .flat_map(|alt| {
                                let mut whole = head.to_vec();
                                whole.extend(alt);
                                whole.extend_from_slice(tail);
                                expand(&whole)
                            })
                            .collect();
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    vec![p.to_vec()]
}

fn split_alternatives(inner: &[char]) -> Vec<Vec<char>> {
    let mut out = vec![Vec::new()];
    let mut depth = 0;
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        match c {
            '\\' if i + 1 < inner.len() => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                    last.push(inner[i + 1]);
                }
                i += 2;
                continue;
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(Vec::new());
                i += 1;
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
        i += 1;
    }
    out
}

fn match_here(p: &[char], t: &[char]) -> bool {
    let Some(&first) = p.first() else {
        return t.is_empty();
    };
    match first {
        '*' => (0..=t.len())
            .take_while(|n| *n == 0 || t[n - 1] != '/')
            .any(|n| match_here(&p[1..], &t[n..])),
        '?' => t.first().is_some_and(|c| *c != '/') && match_here(&p[1..], &t[1..]),
        '[' => match (t.first(), class(&p[1..])) {
            (Some(&c), Some((matched, len))) => matched(c) && match_here(&p[1 + len..], &t[1..]),
            (_, None) => t.first() == Some(&'[') && match_here(&p[1..], &t[1..]),
            (None, _) => false,
        },
        '\\' if p.len() > 1 => t.first() == Some(&p[1]) && match_here(&p[2..], &t[1..]),
        c => t.first() == Some(&c) && match_here(&p[1..], &t[1..]),
    }
}

/// A `[...]` class (after its `[`): a test and the pattern characters it took, with its `]`.
fn class(p: &[char]) -> Option<(impl Fn(char) -> bool, usize)> {
    let negate = matches!(p.first(), Some('^' | '!'));
    let start = usize::from(negate);
    let end = p.iter().skip(start + 1).position(|c| *c == ']')? + start + 1;
    let items: Vec<char> = p[start..end].to_vec();
    let test = move |c: char| {
        let mut hit = false;
        let mut i = 0;
        while i < items.len() {
            if i + 2 < items.len() && items[i + 1] == '-' {
                hit |= items[i] <= c && c <= items[i + 2];
                i += 3;
            } else {
                hit |= items[i] == c;
                i += 1;
            }
        }
        hit != negate
    };
    Some((test, end + 1))
}

/// Which listed files a source reads: those below the folders a glob in the source path
/// matched, whose names match `pathGlobFilter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFilter {
    /// The glob parts of the source path (after its last plain folder), one per folder level.
    pub path: Vec<String>,
    /// `pathGlobFilter`: a pattern for file names.
    pub name: Option<String>,
}

impl FileFilter {
    /// Is the file named `rel` (relative to the source's plain root) read?
    pub fn selects(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.len() < self.path.len() {
            return false;
        }
        let below_glob = self
            .path
            .iter()
            .zip(&parts)
            .all(|(pattern, part)| matches(pattern, part));
        let name = parts.last().copied().unwrap_or(rel);
        below_glob && self.name.as_deref().is_none_or(|p| matches(p, name))
    }
}

/// A source path split into its plain root and the glob parts after it:
/// `s3://b/logs/*/2024*/` is `s3://b/logs` and `["*", "2024*"]`.
pub fn split_source(uri: &str) -> (String, Vec<String>) {
    let trimmed = uri.trim().trim_end_matches('/');
    let (scheme, path) = match trimmed.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), trimmed),
    };
    let parts: Vec<&str> = path.split('/').collect();
    match parts.iter().position(|p| is_glob(p)) {
        // A glob in the bucket name is no glob.
        Some(0) if !scheme.is_empty() => (uri.to_string(), Vec::new()),
        Some(i) => {
            let root = parts[..i].join("/");
            let root = match (root.is_empty(), path.starts_with('/')) {
                (true, true) => "/".to_string(),
                (true, false) => ".".to_string(),
                _ => root,
            };
            (
                format!("{scheme}{root}"),
                parts[i..]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| p.to_string())
                    .collect(),
            )
        }
        None => (uri.to_string(), Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hadoop GlobFilter's syntax (TestGlobPattern's cases).
    #[test]
    fn hadoop_glob_syntax() {
        for (pattern, yes, no) in [
            ("*.json", "a.json", "a.json.gz"),
            ("*.json*", "a.json.gz", "a.csv"),
            ("part-?.csv", "part-1.csv", "part-10.csv"),
            ("[abc].txt", "b.txt", "d.txt"),
            ("[a-c]x", "cx", "dx"),
            ("[^a]x", "bx", "ax"),
            ("[!a]x", "bx", "ax"),
            ("{a,b}.json", "b.json", "c.json"),
            ("x{1,{2,3}}", "x3", "x4"),
            ("\\*.json", "*.json", "a.json"),
            ("logs/*/*", "logs/2024/01", "logs/2024"),
            ("*", "abc", "a/b"),
        ] {
            assert!(matches(pattern, yes), "{pattern} should match {yes}");
            assert!(!matches(pattern, no), "{pattern} should not match {no}");
        }
        assert!(is_glob("logs/*/") && !is_glob("logs/2024/"));
    }

    #[test]
    fn source_paths_split_at_their_first_glob() {
        assert_eq!(
            split_source("s3://b/logs/*/2024*/"),
            (
                "s3://b/logs".to_string(),
                vec!["*".to_string(), "2024*".to_string()]
            )
        );
        assert_eq!(split_source("/land/x"), ("/land/x".to_string(), vec![]));
        assert_eq!(
            split_source("*/in"),
            (".".to_string(), vec!["*".to_string(), "in".to_string()])
        );
        let f = FileFilter {
            path: vec!["2024-*".into()],
            name: Some("*.json".into()),
        };
        assert!(f.selects("2024-01/a/b.json"));
        assert!(!f.selects("2023-12/b.json"));
        assert!(!f.selects("2024-01/b.csv"));
        assert!(!f.selects("top.json"));
    }
}
