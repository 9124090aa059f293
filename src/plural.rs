//! Counts in plain English: "1 file", "2 files", "0 files".

/// `n` and the noun that goes with it.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_and_many() {
        assert_eq!(super::count(1, "file", "files"), "1 file");
        assert_eq!(super::count(0, "file", "files"), "0 files");
        assert_eq!(super::count(2, "ssh key", "ssh keys"), "2 ssh keys");
    }
}
