use super::*;

fn offsets(text: &str) -> Vec<Result<usize, usize>> {
    split(text)
        .into_iter()
        .map(|item| match item {
            Item::Json { offset, .. } => Ok(offset),
            Item::Malformed { offset, .. } => Err(offset),
        })
        .collect()
}

#[test]
fn single_object_array_and_ndjson() {
    assert_eq!(offsets("  {\"a\":1}\n"), vec![Ok(2)]);
    assert_eq!(offsets("[{\"a\":1},\n {\"b\":2}]"), vec![Ok(1), Ok(11)]);
    assert_eq!(offsets("{\"a\":1}\n\n{\"b\":2}\n"), vec![Ok(0), Ok(9)]);
}

#[test]
fn a_bad_ndjson_line_is_reported_where_it_breaks() {
    assert_eq!(offsets("{\"a\":1}\n{\"b\":}\n{\"c\":3}"), vec![Ok(0), Err(13), Ok(15)]);
}

#[test]
fn one_malformed_document() {
    assert_eq!(offsets("{\n  \"a\": 1,\n}"), vec![Err(12)]);
}

#[test]
fn line_index_counts_lines_and_characters() {
    let text = "ab\ncdé\nf";
    let index = LineIndex::new(text);
    assert_eq!(index.line_column(0), (1, 1));
    assert_eq!(index.line_column(3), (2, 1));
    assert_eq!(index.line_column(text.find('f').unwrap()), (3, 1));
    assert_eq!(index.line_column(text.len()), (3, 2));
}
