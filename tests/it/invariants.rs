//! The three rewrite invariants, checked independently of the code under test: (1) bytes outside the
//! edited ranges are identical and each edit stays inside its field's value, (2) the output parses (with
//! a second, independent YAML loader: `serde_yaml_ng`, libyaml's grammar) to the same tree except for the
//! changed values, which read as strings, (3) running the same bump again changes nothing; and (4) the
//! controller's rewrite of each bumped target alone (`reconcile::rewrite`, whose read-back may be
//! derived without a second parse) reports what discovering its output finds.
//!
//! One copy serves both crates: the integration tests (`mod invariants`) and the `rewrite` fuzz target
//! (`fuzz/fuzz_targets/rewrite.rs` includes this file by `#[path]`). Fixtures, the corpus and generated
//! files are [`Input::Known`]; the fuzzer's bytes are [`Input::Arbitrary`], where the two YAML loaders
//! may read the file differently (docs/reliability/fuzzing.md, findings 4 and 10).

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;
use tagwatch::manifest::{self, Bump, Edit, Role};
use tagwatch::reference::ImageReference;

/// Where the file comes from, which decides what a disagreement between the loaders means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A fixture, a corpus file or a generated one: both loaders must agree, every edit must apply and
    /// change a value.
    Known,
    /// Any bytes (the fuzzer's): overlapping edits may be refused whole; where libyaml (YAML 1.1) and
    /// discovery (YAML 1.2) read the edited scalar differently, the trees are not compared (invariants
    /// 1 and 3 still hold); a file libyaml refused may become one it loads (it read nothing before).
    Arbitrary,
}

/// What one rewrite of a file did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rewritten: usize,
    pub requoted: usize,
    /// `line: reason` for targets that could not take the bump.
    pub refused: Vec<String>,
    /// Why the independent loader refused the input (and, the same way, the output).
    pub not_loadable: Option<String>,
}

/// Applies `bump_for(target)` to every target of `bytes` and checks the invariants; panics with the
/// file's name on the first violation.
pub fn check_rewrite(
    name: &str,
    bytes: &[u8],
    bump_for: &dyn Fn(&manifest::Target) -> Bump,
) -> Outcome {
    check(Input::Known, name, bytes, bump_for)
}

/// [`check_rewrite`] for bytes of any origin (see [`Input`]).
pub fn check(
    input: Input,
    name: &str,
    bytes: &[u8],
    bump_for: &dyn Fn(&manifest::Target) -> Bump,
) -> Outcome {
    let path = Path::new(name);
    let discovery = manifest::discover(path, bytes);
    let mut outcome = Outcome::default();
    let mut edits: Vec<Edit> = Vec::new();
    let mut bumped = Vec::new();
    for (index, target) in discovery.targets.iter().enumerate() {
        let bump = bump_for(target);
        match manifest::edits_for(target, &bump, discovery.quote_style) {
            Ok(target_edits) => {
                for edit in &target_edits {
                    let inside = target.fields.iter().any(|field| {
                        field.range.as_ref().is_some_and(|range| {
                            range.start <= edit.range.start && edit.range.end <= range.end
                        }) && (field.role != Role::Reference
                            || bump.name.is_some()
                            || edit_after_name(field, edit)
                            || requoted_whole(field, edit))
                    });
                    assert!(
                        inside,
                        "{name}: edit {edit:?} leaves the tag/digest bytes of {target:?}"
                    );
                }
                outcome.requoted += target_edits.iter().filter(|edit| edit.requoted).count();
                if !target_edits.is_empty() {
                    outcome.rewritten += 1;
                    bumped.push((index, bump));
                }
                edits.extend(target_edits);
            }
            Err(error) => outcome.refused.push(format!("{}: {error}", target.line)),
        }
    }
    let output = match manifest::apply(bytes, &edits) {
        Ok(output) => output,
        // Two targets sharing one scalar (an alias) may plan overlapping edits: refused whole.
        Err(error) if input == Input::Arbitrary => {
            outcome.refused.push(format!("apply: {error}"));
            return outcome;
        }
        Err(error) => panic!("{name}: {error}"),
    };
    if edits.is_empty() {
        assert_eq!(output, bytes, "{name}: no edits but changed bytes");
        return outcome;
    }

    // (1) Everything outside the edits is byte-identical.
    let mut sorted = edits.clone();
    sorted.sort_by_key(|edit| edit.range.start);
    sorted.dedup();
    let (mut input_at, mut output_at) = (0, 0);
    for edit in &sorted {
        let kept = &bytes[input_at..edit.range.start];
        assert_eq!(
            &output[output_at..output_at + kept.len()],
            kept,
            "{name}: bytes before {edit:?}"
        );
        output_at += kept.len();
        let replaced = &output[output_at..output_at + edit.replacement.len()];
        assert_eq!(
            replaced,
            edit.replacement.as_bytes(),
            "{name}: replacement {edit:?}"
        );
        output_at += edit.replacement.len();
        input_at = edit.range.end;
    }
    assert_eq!(
        &output[output_at..],
        &bytes[input_at..],
        "{name}: bytes after the last edit"
    );

    // (2) Same tree, except changed values, which are strings.
    let new_discovery = manifest::discover(path, &output);
    assert!(
        !new_discovery.skipped,
        "{name}: output no longer parses: {:?}",
        new_discovery.warnings
    );
    assert_eq!(
        new_discovery.targets.len(),
        discovery.targets.len(),
        "{name}: targets changed"
    );
    let mut changed: HashSet<String> = HashSet::new();
    for (index, _) in &bumped {
        for field in &new_discovery.targets[*index].fields {
            changed.insert(field.value.clone());
        }
    }
    let before = load_all(std::str::from_utf8(bytes).unwrap());
    let after = load_all(std::str::from_utf8(&output).unwrap());
    match (before, after) {
        // The loaders disagree on the scalar being edited (YAML 1.2, which discovery follows, lets an
        // anchor name hold `:`; libyaml ends it there): no common tree to compare.
        (Ok(before), Ok(_))
            if input == Input::Arbitrary
                && (anchor_name_with_colon(bytes)
                    || !edited_values_read_alike(&discovery, &bumped, &before)) => {}
        (Ok(before), Ok(after)) => {
            assert_eq!(before.len(), after.len(), "{name}: document count changed");
            let mut differences = 0;
            for (a, b) in before.iter().zip(&after) {
                compare(name, a, b, &changed, &mut differences);
            }
            assert!(
                differences > 0 || input == Input::Arbitrary,
                "{name}: edits made but no value changed"
            );
        }
        // Generated noise that the two parsers judge differently (libyaml refuses a leading `...`, for
        // one): the rewrite must not change libyaml's verdict. Every corpus file loads.
        (Err(before), Err(_)) => outcome.not_loadable = Some(before),
        // YAML 1.2 reads what libyaml refuses (`{tag:}`); filling the empty value can make the file one
        // libyaml loads. A YAML 1.1 tool read nothing from it before (finding 10).
        (Err(before), Ok(_)) if input == Input::Arbitrary => outcome.not_loadable = Some(before),
        (before, after) => panic!("{name}: libyaml's verdict changed: {before:?} -> {after:?}"),
    }

    // (3) A second run is a no-op.
    for (index, bump) in &bumped {
        let target = &new_discovery.targets[*index];
        let again = manifest::edits_for(target, bump, new_discovery.quote_style)
            .unwrap_or_else(|error| panic!("{name}: second run failed: {error}"));
        assert!(again.is_empty(), "{name}: second run edits {again:?}");
    }

    // (4) The controller's read-back of each bump equals discovering its output.
    for (index, bump) in &bumped {
        let target = &discovery.targets[*index];
        let image = target.reference.name();
        let planned = tagwatch::reconcile::rewrite::Planned {
            target: *index,
            from: &target.written,
            image: &image,
            edit: bump,
            to: None,
        };
        // Refusals are the controller's to make (a field shared by an alias, for one).
        let Ok(rewritten) =
            tagwatch::reconcile::rewrite::rewrite(path, bytes, &discovery, &[planned])
        else {
            continue;
        };
        let read = manifest::discover(path, &rewritten.after);
        assert_eq!(
            read.targets.len(),
            discovery.targets.len(),
            "{name}: (4) targets"
        );
        assert_eq!(
            rewritten.written,
            [read.targets[*index].written.clone()],
            "{name}: (4) read-back of target {index}"
        );
    }
    outcome
}

/// Whether an anchor or alias name holds `:` (`&a:b`, `*a:b`): YAML 1.2 reads it as part of the name,
/// libyaml ends the name there, so the two loaders read different values after it.
fn anchor_name_with_colon(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(index, byte)| {
        (*byte == b'&' || *byte == b'*')
            && bytes[index + 1..]
                .iter()
                .take_while(|byte| !byte.is_ascii_whitespace() && !b",[]{}".contains(byte))
                .any(|byte| *byte == b':')
    })
}

/// Whether libyaml reads every edited field's old value somewhere in the file (as a string, a
/// number written the same way, or a null for an empty field).
fn edited_values_read_alike(
    discovery: &manifest::Discovery,
    bumped: &[(usize, Bump)],
    documents: &[Tree],
) -> bool {
    let mut scalars = HashSet::new();
    for document in documents {
        collect_scalars(document, &mut scalars);
    }
    bumped.iter().all(|(index, _)| {
        discovery.targets[*index].fields.iter().all(|field| {
            field.range.is_none() || field.is_null() || scalars.contains(field.value.as_str())
        })
    })
}

fn collect_scalars<'t>(tree: &'t Tree, scalars: &mut HashSet<&'t str>) {
    match tree {
        Tree::String(text) | Tree::Number(text) => {
            scalars.insert(text);
        }
        Tree::Sequence(items) => items.iter().for_each(|item| collect_scalars(item, scalars)),
        Tree::Mapping(entries) => entries.iter().for_each(|(key, value)| {
            collect_scalars(key, scalars);
            collect_scalars(value, scalars);
        }),
        Tree::Tagged(_, inner) => collect_scalars(inner, scalars),
        Tree::Null | Tree::Bool(_) => {}
    }
}

/// A plain scalar requoted because its new value would read as something else (`image: 0`, an
/// integer, becoming `"0:1.10"`): the edit covers the whole scalar, and the name as written is kept
/// inside the quotes (fuzzing finding 5).
fn requoted_whole(field: &manifest::Field, edit: &Edit) -> bool {
    edit.requoted
        && field.range.as_ref() == Some(&edit.range)
        && ImageReference::parse_with_spans(&field.value).is_ok_and(|(_, spans)| {
            edit.replacement[1..].starts_with(&field.value[spans.name.clone()])
        })
}

/// For a whole-reference field and an unchanged name, an edit starts after the name as written.
fn edit_after_name(field: &manifest::Field, edit: &Edit) -> bool {
    let Ok((_, spans)) = ImageReference::parse_with_spans(&field.value) else {
        return false;
    };
    let range = field.range.as_ref().unwrap();
    edit.range.start >= range.start + spans.name.end
}

/// A loaded YAML value that keeps duplicate keys (real manifests have them; `serde_yaml_ng::Value`
/// refuses them) and tells strings from other scalars.
#[derive(Debug, Clone, PartialEq)]
enum Tree {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Sequence(Vec<Tree>),
    Mapping(Vec<(Tree, Tree)>),
    Tagged(String, Box<Tree>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> serde::de::Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }
    fn visit_bool<E>(self, value: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Tree, E> {
        Ok(Tree::Number(value.to_string()))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Tree, E> {
        Ok(Tree::Number(value.to_string()))
    }
    // Integers beyond 64 bits (`tag: 555…9`): serde_yaml_ng hands them over as 128-bit ones (finding 8).
    fn visit_i128<E>(self, value: i128) -> Result<Tree, E> {
        Ok(Tree::Number(value.to_string()))
    }
    fn visit_u128<E>(self, value: u128) -> Result<Tree, E> {
        Ok(Tree::Number(value.to_string()))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Tree, E> {
        Ok(Tree::Number(value.to_string()))
    }
    fn visit_str<E>(self, value: &str) -> Result<Tree, E> {
        Ok(Tree::String(value.to_string()))
    }
    fn visit_string<E>(self, value: String) -> Result<Tree, E> {
        Ok(Tree::String(value))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::Sequence(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Tree::Mapping(entries))
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, data: A) -> Result<Tree, A::Error> {
        use serde::de::VariantAccess;
        let (tag, variant): (String, _) = data.variant()?;
        Ok(Tree::Tagged(tag, Box::new(variant.newtype_variant()?)))
    }
}

fn load_all(text: &str) -> Result<Vec<Tree>, String> {
    // libyaml (under serde_yaml_ng) misreads a BOM followed by `---`; the BOM itself is covered by
    // invariant (1), byte for byte.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| Tree::deserialize(document).map_err(|error| error.to_string()))
        .collect()
}

fn compare(name: &str, a: &Tree, b: &Tree, changed: &HashSet<String>, differences: &mut usize) {
    match (a, b) {
        (Tree::Sequence(x), Tree::Sequence(y)) => {
            assert_eq!(x.len(), y.len(), "{name}: sequence length changed");
            for (x, y) in x.iter().zip(y) {
                compare(name, x, y, changed, differences);
            }
        }
        (Tree::Mapping(x), Tree::Mapping(y)) => {
            assert_eq!(x.len(), y.len(), "{name}: mapping size changed");
            for ((kx, vx), (ky, vy)) in x.iter().zip(y) {
                // A key can be a mapping holding an image (`{image: nginx}: x`): compared as values
                // (finding 6).
                compare(name, kx, ky, changed, differences);
                compare(name, vx, vy, changed, differences);
            }
        }
        (Tree::Tagged(tx, x), Tree::Tagged(ty, y)) => {
            assert_eq!(tx, ty, "{name}: tag changed");
            compare(name, x, y, changed, differences);
        }
        _ if a == b => {}
        (_, Tree::String(new)) if changed.contains(new) => *differences += 1,
        _ => panic!("{name}: value {a:?} became {b:?}, which is not a bumped value"),
    }
}
