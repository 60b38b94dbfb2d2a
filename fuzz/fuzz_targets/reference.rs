//! Image reference parser: never panics; a parsed reference's spans cut the input at its name, tag and
//! digest; its normalized form (`Display`) parses back to the same reference; the normalized name is
//! a valid name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagwatch::reference::{ImageReference, is_valid_digest, is_valid_tag, normalize_name};

fuzz_target!(|text: &str| {
    let _ = is_valid_tag(text);
    let _ = is_valid_digest(text);
    let Ok((reference, spans)) = ImageReference::parse_with_spans(text) else {
        return;
    };
    assert!(spans.name.start == 0 && spans.name.end <= text.len());
    if let Some(tag) = &spans.tag {
        assert_eq!(Some(&text[tag.clone()]), reference.tag.as_deref());
        assert!(is_valid_tag(&text[tag.clone()]));
    }
    if let Some(digest) = &spans.digest {
        assert_eq!(Some(&text[digest.clone()]), reference.digest.as_deref());
    }
    let normalized = reference.to_string();
    let again = ImageReference::parse(&normalized)
        .unwrap_or_else(|error| panic!("{text:?} → {normalized:?} does not parse: {error}"));
    assert_eq!(again, reference, "{text:?} → {normalized:?}");
    assert_eq!(
        normalize_name(&reference.name()).as_deref(),
        Ok(reference.name().as_str())
    );
    let _ = reference.api_host();
});
