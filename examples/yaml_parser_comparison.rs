//! Compares the two candidate span-reporting YAML parsers over the corpus (`docs/design/manifest.md` records
//! the figures): which files each accepts, whether its positions are bytes or characters (checked on
//! every scalar of non-ASCII files against the source text), how often its scalar start lands where the
//! value is written, and how long a sweep takes.
//!
//! Run: `cargo run --release --example yaml_parser_comparison`

use std::path::Path;
use std::time::Instant;

/// Scalars of one parse: (decoded value, reported start index).
type Scalars = Vec<(String, usize)>;

fn saphyr(text: &str) -> Result<Scalars, String> {
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    let mut out = Vec::new();
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|error| error.to_string())?;
        if let saphyr_parser::Event::Scalar(value, ..) = event {
            out.push((value.into_owned(), span.start.index()));
        }
    }
    Ok(out)
}

fn yaml_rust2(text: &str) -> Result<Scalars, String> {
    let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
    let mut out = Vec::new();
    loop {
        let (event, marker) = parser.next_token().map_err(|error| error.to_string())?;
        match event {
            yaml_rust2::parser::Event::StreamEnd => break,
            yaml_rust2::parser::Event::Scalar(value, ..) => out.push((value, marker.index())),
            _ => {}
        }
    }
    Ok(out)
}

/// How many reported starts point at the value's first byte, reading the index as bytes and as chars.
fn agreement(text: &str, scalars: &Scalars) -> (usize, usize) {
    let chars: Vec<usize> = text.char_indices().map(|(offset, _)| offset).collect();
    let (mut as_bytes, mut as_chars) = (0, 0);
    for (value, index) in scalars {
        let Some(first) = value.split('\n').next().filter(|line| !line.is_empty()) else {
            continue;
        };
        if text
            .get(*index..)
            .is_some_and(|rest| rest.starts_with(first))
        {
            as_bytes += 1;
        }
        if chars
            .get(*index)
            .and_then(|&offset| text.get(offset..))
            .is_some_and(|rest| rest.starts_with(first))
        {
            as_chars += 1;
        }
    }
    (as_bytes, as_chars)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let index = std::fs::read_to_string(root.join("INDEX.tsv")).unwrap();
    let files: Vec<String> = index
        .lines()
        .skip(1)
        .map(|line| std::fs::read_to_string(root.join(line.split('\t').next().unwrap())).unwrap())
        .collect();
    type Parse = fn(&str) -> Result<Scalars, String>;
    for (name, parse) in [
        ("saphyr-parser 0.3", saphyr as Parse),
        ("yaml-rust2 0.13", yaml_rust2 as Parse),
    ] {
        let start = Instant::now();
        let mut failed = Vec::new();
        let (mut scalars, mut non_ascii_scalars, mut bytes_ok, mut chars_ok) = (0, 0, 0, 0);
        for (number, text) in files.iter().enumerate() {
            match parse(text) {
                Ok(found) => {
                    scalars += found.len();
                    if !text.is_ascii() {
                        non_ascii_scalars += found.len();
                        let (b, c) = agreement(text, &found);
                        bytes_ok += b;
                        chars_ok += c;
                    }
                }
                Err(error) => failed.push(format!("#{number}: {error}")),
            }
        }
        let elapsed = start.elapsed();
        println!(
            "{name}: {} of {} files parse, {scalars} scalars, {elapsed:.1?} for the corpus",
            files.len() - failed.len(),
            files.len()
        );
        println!(
            "  non-ASCII files: {non_ascii_scalars} scalars; start index points at the value when read as bytes: {bytes_ok}, as chars: {chars_ok}"
        );
        for failure in failed {
            println!("  rejects {failure}");
        }
    }
}
