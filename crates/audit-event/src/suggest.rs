//! "Did you mean …?" for misspelt names.

/// The candidate `given` most likely meant: equal ignoring case, else within a small edit distance.
pub(crate) fn suggest<'k>(given: &str, candidates: impl IntoIterator<Item = &'k str> + Clone) -> Option<&'k str> {
    if let Some(same) = candidates.clone().into_iter().find(|c| c.eq_ignore_ascii_case(given)) {
        return Some(same);
    }
    let budget = (given.chars().count() / 4).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&given.to_ascii_lowercase(), &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters; inputs are short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// A sentence tail naming the suggestion, or nothing.
pub(crate) fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map(|s| format!("; did you mean {s:?}?")).unwrap_or_default()
}
