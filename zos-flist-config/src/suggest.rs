//! "Did you mean …?" for misspelt script names and keys.
//!
//! The old service silently ignored a script listed under `buildscripts` whose
//! settings were filed under a slightly different name; the likeliest cause is
//! a typo, so the loader names the nearest candidate. Plain Levenshtein
//! distance over characters is enough for names this short.

/// The Levenshtein distance between `a` and `b`, counted in characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // One row of the classic dynamic-programming table, reused.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The candidate nearest to `target` within `max_distance` edits; on a tie,
/// the first one given (candidates come in file order, so the result is
/// deterministic).
pub(crate) fn closest<'a>(
    target: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    max_distance: usize,
) -> Option<&'a str> {
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = edit_distance(target, candidate);
        if distance <= max_distance && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("autobuild/x.sh", "autobuid/x.sh"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("flaw", "lawn"), 2);
        // Characters, not bytes.
        assert_eq!(edit_distance("ä.sh", "a.sh"), 1);
    }

    #[test]
    fn closest_within_bound() {
        let keys = ["tag", "autobuid/x.sh", "autobuild/y.sh"];
        assert_eq!(
            closest("autobuild/x.sh", keys, 3),
            Some("autobuid/x.sh"),
            "nearest wins over a farther one"
        );
        assert_eq!(closest("completely-else.sh", keys, 3), None);
    }

    #[test]
    fn closest_tie_takes_first() {
        assert_eq!(closest("ab", ["ax", "ay"], 3), Some("ax"));
    }
}
