//! Documents as JSON, both ways, as pure functions of a yrs transaction.
//!
//! Reading gives every root type: `Y.Text` as a string, `Y.Map` as an object, `Y.Array` as an
//! array, `Y.XmlFragment` as ProseMirror JSON (`{"type":"doc","content":[...]}`), the shape
//! y-prosemirror's `yXmlFragmentToProsemirrorJSON` returns. An update does not say which type a
//! root is (Yjs learns it from the code that calls `getText` or `getXmlFragment`), so the type is
//! read off the content: keyed entries make a map, characters a text, XML nodes a fragment,
//! other values an array. A root whose content is all deleted has no type left to read and is
//! `null`.
//!
//! Writing takes the same shapes ([`Content`]), checked before anything is written
//! ([`Content::parse`]), and turns them into one transaction on the live document: a text is
//! changed from its common prefix and suffix, a fragment from its first and last differing
//! top-level nodes, so open editors see an ordinary remote edit and keep their cursors where
//! the text around them did not change.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map as JsonMap, Value};
use yrs::branch::BranchPtr;
use yrs::types::text::YChange;
use yrs::types::{Attrs, ToJson, TypeRef};
use yrs::{
    Any, Array, ArrayRef, GetString, Map, MapRef, Out, ReadTxn, Text, TextRef, TransactionMut,
    WriteTxn, Xml, XmlElementPrelim, XmlElementRef, XmlFragment, XmlFragmentRef, XmlOut,
    XmlTextPrelim, XmlTextRef,
};

/// How deep nested nodes may go, both ways (documents from editors are a few levels deep).
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    Text,
    Map,
    Array,
    XmlFragment,
}

impl RootKind {
    fn name(self) -> &'static str {
        match self {
            RootKind::Text => "a Y.Text (a string)",
            RootKind::Map => "a Y.Map (an object)",
            RootKind::Array => "a Y.Array (an array)",
            RootKind::XmlFragment => "a Y.XmlFragment (ProseMirror JSON)",
        }
    }
}

/// The type of a root, from its declared type or else from its content; `None` when nothing
/// visible is left in it.
pub fn root_kind<T: ReadTxn>(txn: &T, branch: BranchPtr) -> Option<RootKind> {
    match branch.type_ref() {
        TypeRef::Text => return Some(RootKind::Text),
        TypeRef::Map => return Some(RootKind::Map),
        TypeRef::Array => return Some(RootKind::Array),
        TypeRef::XmlFragment => return Some(RootKind::XmlFragment),
        _ => {}
    }
    if MapRef::from(branch).len(txn) > 0 {
        return Some(RootKind::Map);
    }
    // Arrays hold strings as values, never as characters: characters mean a text.
    if !TextRef::from(branch).get_string(txn).is_empty() {
        return Some(RootKind::Text);
    }
    let array = ArrayRef::from(branch);
    let mut any = false;
    for value in array.iter(txn) {
        match value {
            Out::YXmlElement(_) | Out::YXmlText(_) | Out::YXmlFragment(_) => {
                return Some(RootKind::XmlFragment);
            }
            _ => any = true,
        }
    }
    any.then_some(RootKind::Array)
}

/// Every root of the document as JSON.
pub fn document<T: ReadTxn>(txn: &T) -> JsonMap<String, Value> {
    let mut roots = JsonMap::new();
    for (name, root) in txn.root_refs() {
        let Some(branch) = branch_of(&root) else {
            continue;
        };
        roots.insert(name.to_owned(), root_json(txn, branch));
    }
    roots
}

/// A document built from one v1 update (the whole state a room, storage or a version gave),
/// read through the bounded decoder like everything stored.
pub fn doc_of_state(state: &[u8]) -> Result<yrs::Doc, String> {
    use yrs::{Doc, Transact};
    let doc = Doc::new();
    let update = crate::protocol::bounded::update(state).map_err(|e| e.to_string())?;
    crate::protocol::bounded::apply(&mut doc.transact_mut(), update)?;
    Ok(doc)
}

/// Every root of a document given as one v1 update.
pub fn document_of_state(state: &[u8]) -> Result<JsonMap<String, Value>, String> {
    use yrs::Transact;
    Ok(document(&doc_of_state(state)?.transact()))
}

/// One root as JSON (`null` if empty); `None` if the document has no such root.
pub fn root<T: ReadTxn>(txn: &T, name: &str) -> Option<Value> {
    txn.root_refs()
        .find(|(root, _)| *root == name)
        .and_then(|(_, out)| branch_of(&out))
        .map(|branch| root_json(txn, branch))
}

/// The plain text of one root: a text's characters, a fragment's text content (no markup), a
/// map's or array's JSON. `None` if there is no such root.
pub fn root_text<T: ReadTxn>(txn: &T, name: &str) -> Option<String> {
    let (_, out) = txn.root_refs().find(|(root, _)| *root == name)?;
    let branch = branch_of(&out)?;
    Some(match root_kind(txn, branch) {
        None => String::new(),
        Some(RootKind::Text) => TextRef::from(branch).get_string(txn),
        Some(RootKind::XmlFragment) => {
            let mut text = String::new();
            plain_text(txn, &XmlFragmentRef::from(branch), &mut text);
            text
        }
        Some(RootKind::Map | RootKind::Array) => root_json(txn, branch).to_string(),
    })
}

fn branch_of(out: &Out) -> Option<BranchPtr> {
    Some(match out {
        Out::YText(r) => BranchPtr::from(AsRef::<yrs::branch::Branch>::as_ref(r)),
        Out::YArray(r) => BranchPtr::from(AsRef::<yrs::branch::Branch>::as_ref(r)),
        Out::YMap(r) => BranchPtr::from(AsRef::<yrs::branch::Branch>::as_ref(r)),
        Out::YXmlFragment(r) => BranchPtr::from(AsRef::<yrs::branch::Branch>::as_ref(r)),
        Out::YXmlElement(r) => BranchPtr::from(AsRef::<yrs::branch::Branch>::as_ref(r)),
        Out::YXmlText(r) => BranchPtr::from(AsRef::<yrs::branch::Branch>::as_ref(r)),
        Out::UndefinedRef(branch) => *branch,
        _ => return None,
    })
}

fn root_json<T: ReadTxn>(txn: &T, branch: BranchPtr) -> Value {
    match root_kind(txn, branch) {
        None => Value::Null,
        Some(RootKind::Text) => Value::String(TextRef::from(branch).get_string(txn)),
        Some(RootKind::Map) => any_json(&MapRef::from(branch).to_json(txn)),
        Some(RootKind::Array) => any_json(&ArrayRef::from(branch).to_json(txn)),
        Some(RootKind::XmlFragment) => prosemirror(txn, &XmlFragmentRef::from(branch)),
    }
}

fn any_json(any: &Any) -> Value {
    serde_json::to_value(any).unwrap_or(Value::Null)
}

/// y-prosemirror's `yXmlFragmentToProsemirrorJSON`: top-level nodes are not flattened (a text
/// directly in the fragment stays one array), an element's children are.
pub fn prosemirror<T: ReadTxn>(txn: &T, fragment: &XmlFragmentRef) -> Value {
    let content: Vec<Value> = fragment
        .children(txn)
        .map(|child| match node_json(txn, child, 0) {
            Node::One(value) => value,
            Node::Texts(texts) => Value::Array(texts),
        })
        .collect();
    serde_json::json!({"type": "doc", "content": content})
}

enum Node {
    One(Value),
    Texts(Vec<Value>),
}

fn node_json<T: ReadTxn>(txn: &T, node: XmlOut, depth: usize) -> Node {
    match node {
        XmlOut::Text(text) => Node::Texts(text_nodes(txn, &text)),
        XmlOut::Element(element) => {
            let mut object = JsonMap::new();
            object.insert("type".into(), Value::String(element.tag().to_string()));
            let attrs: JsonMap<String, Value> = element
                .attributes(txn)
                .map(|(key, value)| (key.to_owned(), any_json(&value.to_json(txn))))
                .collect();
            if !attrs.is_empty() {
                object.insert("attrs".into(), Value::Object(attrs));
            }
            if depth < MAX_DEPTH {
                let mut content = Vec::new();
                for child in element.children(txn) {
                    match node_json(txn, child, depth + 1) {
                        Node::One(value) => content.push(value),
                        Node::Texts(texts) => content.extend(texts),
                    }
                }
                if !content.is_empty() {
                    object.insert("content".into(), Value::Array(content));
                }
            }
            Node::One(Value::Object(object))
        }
        // A fragment inside a fragment: y-prosemirror would fail on it; say what it is.
        XmlOut::Fragment(fragment) => Node::One(Value::String(fragment.get_string(txn))),
    }
}

/// The runs of an XML text as ProseMirror text nodes: marks from the formatting attributes
/// (`name--hash` for overlapping marks, named `name`), with the attribute's value as `attrs`.
fn text_nodes<T: ReadTxn>(txn: &T, text: &XmlTextRef) -> Vec<Value> {
    text.diff(txn, YChange::identity)
        .into_iter()
        .map(|run| {
            let mut node = JsonMap::new();
            node.insert("type".into(), Value::String("text".into()));
            let insert = match &run.insert {
                Out::Any(any) => any_json(any),
                other => any_json(&other.to_json(txn)),
            };
            node.insert("text".into(), insert);
            if let Some(attributes) = &run.attributes {
                // Yjs keeps the order the formats were written in; yrs does not, so marks come
                // in name order (for Tiptap's StarterKit, the same order).
                let mut names: Vec<&Arc<str>> = attributes.keys().collect();
                names.sort();
                let marks: Vec<Value> = names
                    .into_iter()
                    .map(|name| {
                        serde_json::json!({
                            "type": mark_name(name),
                            "attrs": any_json(&attributes[name]),
                        })
                    })
                    .collect();
                node.insert("marks".into(), Value::Array(marks));
            }
            Value::Object(node)
        })
        .collect()
}

/// y-prosemirror's `yattr2markname`: `comment--AbCdEf12` is a `comment` mark.
fn mark_name(attribute: &str) -> &str {
    let bytes = attribute.as_bytes();
    if bytes.len() > 10 {
        let (name, hash) = attribute.split_at(attribute.len() - 10);
        let hash = hash.as_bytes();
        if hash.starts_with(b"--")
            && hash[2..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return name;
        }
    }
    attribute
}

/// Each top-level node's text on its own line; inside a node, child blocks (list items) are
/// separated by newlines; text runs and inline nodes are joined.
fn plain_text<T: ReadTxn>(txn: &T, fragment: &XmlFragmentRef, out: &mut String) {
    for child in fragment.children(txn) {
        out.push_str(&node_text(txn, child, 0));
        out.push('\n');
    }
}

fn node_text<T: ReadTxn>(txn: &T, node: XmlOut, depth: usize) -> String {
    match node {
        XmlOut::Text(text) => text
            .diff(txn, YChange::identity)
            .into_iter()
            .filter_map(|run| match run.insert {
                Out::Any(Any::String(s)) => Some(s.to_string()),
                _ => None,
            })
            .collect(),
        XmlOut::Element(element) if depth < MAX_DEPTH => {
            let children: Vec<XmlOut> = element.children(txn).collect();
            // Children that are all elements are blocks (list items); next to text they are
            // inline (a hard break, a mention) and add their own text only.
            let blocks = children.iter().any(|c| matches!(c, XmlOut::Element(_)))
                && !children.iter().any(|c| matches!(c, XmlOut::Text(_)));
            let parts: Vec<String> = children
                .into_iter()
                .map(|child| node_text(txn, child, depth + 1))
                .collect();
            parts.join(if blocks { "\n" } else { "" })
        }
        XmlOut::Element(_) => String::new(),
        XmlOut::Fragment(fragment) => fragment.get_string(txn),
    }
}

/// What a write sets one root to, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Map(JsonMap<String, Value>),
    Array(Vec<Value>),
    Fragment(Vec<PmNode>),
}

/// A ProseMirror node, as y-prosemirror stores it: consecutive text nodes become one XML text.
#[derive(Debug, Clone, PartialEq)]
pub enum PmNode {
    Element {
        tag: String,
        attrs: Vec<(String, Any)>,
        content: Vec<PmNode>,
    },
    Text(Vec<TextRun>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TextRun {
    pub text: String,
    pub marks: Vec<(String, Any)>,
}

impl Content {
    /// Reads the JSON of one root: a string, `{"type":"doc",...}`, another object, or an array.
    pub fn parse(root: &str, value: &Value) -> Result<Content, String> {
        match value {
            Value::String(text) => Ok(Content::Text(text.clone())),
            Value::Object(object) if object.get("type") == Some(&Value::from("doc")) => {
                let nodes = match object.get("content") {
                    None => Vec::new(),
                    Some(Value::Array(nodes)) => nodes.as_slice().to_vec(),
                    Some(_) => return Err(format!("{root}.content: expected an array of nodes")),
                };
                Ok(Content::Fragment(parse_nodes(
                    &format!("{root}.content"),
                    &nodes,
                    0,
                )?))
            }
            Value::Object(object) => Ok(Content::Map(object.clone())),
            Value::Array(values) => Ok(Content::Array(values.clone())),
            _ => Err(format!(
                "{root}: expected a string, an object, an array or ProseMirror JSON ({{\"type\":\"doc\",...}})"
            )),
        }
    }

    fn kind(&self) -> RootKind {
        match self {
            Content::Text(_) => RootKind::Text,
            Content::Map(_) => RootKind::Map,
            Content::Array(_) => RootKind::Array,
            Content::Fragment(_) => RootKind::XmlFragment,
        }
    }
}

/// Reads ProseMirror nodes (the `content` of a doc or a node), grouping text nodes.
pub fn parse_nodes(path: &str, nodes: &[Value], depth: usize) -> Result<Vec<PmNode>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("{path}: nested deeper than {MAX_DEPTH} levels"));
    }
    let mut parsed: Vec<PmNode> = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let path = format!("{path}[{index}]");
        let Value::Object(node) = node else {
            return Err(format!("{path}: expected a node object"));
        };
        let Some(Value::String(kind)) = node.get("type") else {
            return Err(format!("{path}.type: expected a string"));
        };
        if kind == "text" {
            let Some(Value::String(text)) = node.get("text") else {
                return Err(format!("{path}.text: expected a string"));
            };
            let marks = parse_marks(&path, node.get("marks"))?;
            let run = TextRun {
                text: text.clone(),
                marks,
            };
            match parsed.last_mut() {
                Some(PmNode::Text(runs)) => runs.push(run),
                _ => parsed.push(PmNode::Text(vec![run])),
            }
            continue;
        }
        if kind.is_empty() {
            return Err(format!("{path}.type: must not be empty"));
        }
        let attrs = match node.get("attrs") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(attrs)) => attrs
                .iter()
                // y-prosemirror leaves null attributes out.
                .filter(|(key, value)| !value.is_null() && key.as_str() != "ychange")
                .map(|(key, value)| {
                    Ok((
                        key.clone(),
                        json_any(&format!("{path}.attrs.{key}"), value)?,
                    ))
                })
                .collect::<Result<_, String>>()?,
            Some(_) => return Err(format!("{path}.attrs: expected an object")),
        };
        let content = match node.get("content") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(children)) => {
                parse_nodes(&format!("{path}.content"), children, depth + 1)?
            }
            Some(_) => return Err(format!("{path}.content: expected an array")),
        };
        parsed.push(PmNode::Element {
            tag: kind.clone(),
            attrs,
            content,
        });
    }
    Ok(parsed)
}

fn parse_marks(path: &str, marks: Option<&Value>) -> Result<Vec<(String, Any)>, String> {
    let marks = match marks {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(marks)) => marks,
        Some(_) => return Err(format!("{path}.marks: expected an array")),
    };
    marks
        .iter()
        .enumerate()
        .map(|(index, mark)| {
            let path = format!("{path}.marks[{index}]");
            let Some(Value::String(kind)) = mark.get("type") else {
                return Err(format!("{path}.type: expected a string"));
            };
            // ProseMirror gives a mark without attributes `{}` (y-prosemirror stores that).
            let attrs = match mark.get("attrs") {
                None | Some(Value::Null) => Any::Map(Default::default()),
                Some(value) => json_any(&format!("{path}.attrs"), value)?,
            };
            Ok((kind.clone(), attrs))
        })
        .collect()
}

fn json_any(path: &str, value: &Value) -> Result<Any, String> {
    serde_json::from_value(value.clone()).map_err(|e| format!("{path}: {e}"))
}

/// Replaces the content of the given roots, in one transaction. Checks every root's type
/// before writing anything.
pub fn replace(txn: &mut TransactionMut<'_>, roots: &[(String, Content)]) -> Result<(), String> {
    for (name, content) in roots {
        check_kind(txn, name, content.kind())?;
    }
    for (name, content) in roots {
        match content {
            Content::Text(text) => {
                let target = txn.get_or_insert_text(name.as_str());
                replace_text(txn, &target, text)
            }
            Content::Map(object) => {
                let map = txn.get_or_insert_map(name.as_str());
                let stale: Vec<String> = map
                    .keys(txn)
                    .filter(|key| !object.contains_key(*key))
                    .map(str::to_owned)
                    .collect();
                for key in stale {
                    map.remove(txn, &key);
                }
                for (key, value) in object {
                    let value = json_any(&format!("{name}.{key}"), value)?;
                    let unchanged = map.get(txn, key).is_some_and(
                        |current| matches!(current, Out::Any(ref any) if *any == value),
                    );
                    if !unchanged {
                        map.insert(txn, key.as_str(), value);
                    }
                }
            }
            Content::Array(values) => {
                let array = txn.get_or_insert_array(name.as_str());
                let len = array.len(txn);
                if len > 0 {
                    array.remove_range(txn, 0, len);
                }
                for (index, value) in values.iter().enumerate() {
                    let value = json_any(&format!("{name}[{index}]"), value)?;
                    array.push_back(txn, value);
                }
            }
            Content::Fragment(nodes) => {
                let fragment = txn.get_or_insert_xml_fragment(name.as_str());
                replace_fragment(txn, &fragment, nodes);
            }
        }
    }
    Ok(())
}

/// Sets the document to `version` (every root as [`document`] reads it): each root of the
/// version to its content there, through the minimal edits of [`replace`], and every other
/// root that holds something emptied. A root cannot change its type: restoring a text over
/// what is now a map is refused, and nothing is written.
pub fn restore(
    txn: &mut TransactionMut<'_>,
    version: &JsonMap<String, Value>,
) -> Result<(), String> {
    let mut roots: Vec<(String, Content)> = Vec::new();
    for (name, value) in version {
        if !value.is_null() {
            roots.push((name.clone(), Content::parse(name, value)?));
        }
    }
    let current: Vec<(String, RootKind)> = txn
        .root_refs()
        .filter_map(|(name, out)| Some((name.to_owned(), root_kind(txn, branch_of(&out)?)?)))
        .collect();
    for (name, kind) in current {
        if roots.iter().any(|(root, _)| *root == name) {
            continue;
        }
        let empty = match kind {
            RootKind::Text => Content::Text(String::new()),
            RootKind::Map => Content::Map(JsonMap::new()),
            RootKind::Array => Content::Array(Vec::new()),
            RootKind::XmlFragment => Content::Fragment(Vec::new()),
        };
        roots.push((name, empty));
    }
    replace(txn, &roots)
}

/// Appends ProseMirror nodes to a fragment (created if absent).
pub fn append(txn: &mut TransactionMut<'_>, root: &str, nodes: &[PmNode]) -> Result<(), String> {
    check_kind(txn, root, RootKind::XmlFragment)?;
    let fragment = txn.get_or_insert_xml_fragment(root);
    let len = fragment.len(txn);
    insert_nodes(txn, &fragment, len, nodes);
    Ok(())
}

fn check_kind(txn: &TransactionMut<'_>, name: &str, wanted: RootKind) -> Result<(), String> {
    let existing = txn
        .root_refs()
        .find(|(root, _)| *root == name)
        .and_then(|(_, out)| branch_of(&out))
        .and_then(|branch| root_kind(txn, branch));
    match existing {
        Some(kind) if kind != wanted => Err(format!(
            "root {name} is {}; the request gives it {}",
            kind.name(),
            wanted.name()
        )),
        _ => Ok(()),
    }
}

/// Changes only what differs between the current text and `text` (in UTF-16 units, as Yjs
/// counts, which yrs does by default).
fn replace_text(txn: &mut TransactionMut<'_>, target: &TextRef, text: &str) {
    let current = target.get_string(txn);
    if current == text {
        return;
    }
    let old: Vec<char> = current.chars().collect();
    let new: Vec<char> = text.chars().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let units = |chars: &[char]| chars.iter().map(|c| c.len_utf16() as u32).sum::<u32>();
    let start = units(&old[..prefix]);
    let removed = units(&old[prefix..old.len() - suffix]);
    if removed > 0 {
        target.remove_range(txn, start, removed);
    }
    let inserted: String = new[prefix..new.len() - suffix].iter().collect();
    if !inserted.is_empty() {
        target.insert(txn, start, &inserted);
    }
}

/// Keeps the top-level nodes that are equal at both ends and replaces the ones between.
fn replace_fragment(txn: &mut TransactionMut<'_>, fragment: &XmlFragmentRef, nodes: &[PmNode]) {
    let current: Vec<Value> = match prosemirror(txn, fragment) {
        Value::Object(mut doc) => match doc.remove("content") {
            Some(Value::Array(content)) => content,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let wanted: Vec<Value> = nodes.iter().map(pm_node_json).collect();
    let prefix = current
        .iter()
        .zip(&wanted)
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = current[prefix..]
        .iter()
        .rev()
        .zip(wanted[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let removed = (current.len() - prefix - suffix) as u32;
    if removed > 0 {
        fragment.remove_range(txn, prefix as u32, removed);
    }
    insert_nodes(
        txn,
        fragment,
        prefix as u32,
        &nodes[prefix..nodes.len() - suffix],
    );
}

/// The JSON [`prosemirror`] reads back for a node written from `node` (a text node group is one
/// array at the top level).
fn pm_node_json(node: &PmNode) -> Value {
    match node {
        PmNode::Text(runs) => Value::Array(runs.iter().map(run_json).collect()),
        PmNode::Element {
            tag,
            attrs,
            content,
        } => {
            let mut object = JsonMap::new();
            object.insert("type".into(), Value::String(tag.clone()));
            if !attrs.is_empty() {
                let attrs = attrs
                    .iter()
                    .map(|(k, v)| (k.clone(), any_json(v)))
                    .collect();
                object.insert("attrs".into(), Value::Object(attrs));
            }
            let mut children = Vec::new();
            for child in content {
                match child {
                    PmNode::Text(runs) => children.extend(runs.iter().map(run_json)),
                    element => children.push(pm_node_json(element)),
                }
            }
            if !children.is_empty() {
                object.insert("content".into(), Value::Array(children));
            }
            Value::Object(object)
        }
    }
}

fn run_json(run: &TextRun) -> Value {
    let mut node = JsonMap::new();
    node.insert("type".into(), Value::String("text".into()));
    node.insert("text".into(), Value::String(run.text.clone()));
    if !run.marks.is_empty() {
        let mut marks: Vec<&(String, Any)> = run.marks.iter().collect();
        marks.sort_by(|a, b| a.0.cmp(&b.0));
        let marks = marks
            .into_iter()
            .map(|(kind, attrs)| serde_json::json!({"type": mark_name(kind), "attrs": any_json(attrs)}))
            .collect();
        node.insert("marks".into(), Value::Array(marks));
    }
    Value::Object(node)
}

fn insert_nodes(
    txn: &mut TransactionMut<'_>,
    parent: &impl XmlFragment,
    mut index: u32,
    nodes: &[PmNode],
) {
    for node in nodes {
        match node {
            PmNode::Text(runs) => {
                let text: XmlTextRef = parent.insert(txn, index, XmlTextPrelim::new(""));
                write_runs(txn, &text, runs);
            }
            PmNode::Element {
                tag,
                attrs,
                content,
            } => {
                let element: XmlElementRef =
                    parent.insert(txn, index, XmlElementPrelim::empty(tag.as_str()));
                for (key, value) in attrs {
                    element.insert_attribute(txn, key.as_str(), value.clone());
                }
                insert_nodes(txn, &element, 0, content);
            }
        }
        index += 1;
    }
}

/// Writes text runs, each with exactly its marks (a run without a mark ends that mark).
fn write_runs(txn: &mut TransactionMut<'_>, text: &XmlTextRef, runs: &[TextRun]) {
    let mut at = 0u32;
    for run in runs {
        let attributes: Attrs = run
            .marks
            .iter()
            .map(|(kind, attrs)| (Arc::from(kind.as_str()), attrs.clone()))
            .collect::<HashMap<_, _>>();
        text.insert_with_attributes(txn, at, &run.text, attributes);
        at += run.text.encode_utf16().count() as u32;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, StateVector, Transact, Update};

    use super::*;

    fn put(doc: &Doc, body: Value) -> Result<(), String> {
        let Value::Object(roots) = body else {
            panic!("object")
        };
        let roots: Vec<(String, Content)> = roots
            .iter()
            .map(|(name, value)| Ok((name.clone(), Content::parse(name, value)?)))
            .collect::<Result<_, String>>()?;
        replace(&mut doc.transact_mut(), &roots)
    }

    /// Through an update, as another replica or the API's storage path would read it: every
    /// root's type is then unknown and read off the content.
    fn reread(doc: &Doc) -> JsonMap<String, Value> {
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let fresh = Doc::new();
        fresh
            .transact_mut()
            .apply_update(Update::decode_v1(&update).expect("decode"))
            .expect("apply");
        document(&fresh.transact())
    }

    fn tiptap() -> Value {
        json!({
            "default": {"type": "doc", "content": [
                {"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": "Title"}]},
                {"type": "paragraph", "content": [
                    {"type": "text", "text": "plain "},
                    {"type": "text", "text": "bold", "marks": [{"type": "bold", "attrs": {}}]},
                    {"type": "text", "text": " both", "marks": [
                        {"type": "bold", "attrs": {}}, {"type": "italic", "attrs": {}}]},
                    {"type": "text", "text": " link", "marks": [
                        {"type": "link", "attrs": {"href": "https://example.com", "target": "_blank"}}]}
                ]},
                {"type": "bulletList", "content": [{"type": "listItem", "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "item"}]}]}]},
                {"type": "paragraph"}
            ]},
            "title": "A title",
            "meta": {"tags": ["a", "b"], "count": 2, "draft": false},
            "list": [1, "two", {"three": 3}]
        })
    }

    #[test]
    fn every_root_reads_back_as_written() {
        let doc = Doc::new();
        put(&doc, tiptap()).expect("put");
        assert_eq!(Value::Object(reread(&doc)), tiptap());
        assert_eq!(Value::Object(document(&doc.transact())), tiptap());
    }

    #[test]
    fn a_second_write_changes_only_what_differs() {
        let doc = Doc::new();
        put(&doc, json!({"title": "hello world"})).expect("put");
        let before = doc.transact().state_vector();
        put(&doc, json!({"title": "hello brave world"})).expect("put");
        let diff = doc.transact().encode_state_as_update_v1(&before);
        let update = Update::decode_v1(&diff).expect("decode");
        // One insertion of "brave ", no deletions.
        assert!(update.delete_set().is_empty(), "nothing deleted");
        assert_eq!(reread(&doc)["title"], json!("hello brave world"));

        put(&doc, tiptap()).expect("put");
        let before = doc.transact().snapshot();
        let mut changed = tiptap();
        changed["default"]["content"][3] =
            json!({"type": "paragraph", "content": [{"type": "text", "text": "new"}]});
        put(&doc, json!({"default": changed["default"].clone()})).expect("put");
        let after = doc.transact().snapshot();
        // The heading, paragraph and list stay the same items (only the last node changed).
        let deleted: u32 = after
            .delete_set
            .iter()
            .flat_map(|(_, ranges)| ranges.iter().map(|r| r.end - r.start))
            .sum::<u32>()
            - before
                .delete_set
                .iter()
                .flat_map(|(_, ranges)| ranges.iter().map(|r| r.end - r.start))
                .sum::<u32>();
        assert_eq!(deleted, 1, "only the empty paragraph was replaced");
        assert_eq!(Value::Object(reread(&doc))["default"], changed["default"]);
    }

    #[test]
    fn a_root_of_another_type_is_refused_and_nothing_is_written() {
        let doc = Doc::new();
        put(&doc, json!({"title": "text"})).expect("put");
        let before = doc.transact().state_vector();
        let error = put(
            &doc,
            json!({"other": "x", "title": {"type": "doc", "content": []}}),
        )
        .expect_err("refused");
        assert!(error.contains("root title is a Y.Text"), "{error}");
        assert_eq!(doc.transact().state_vector(), before, "nothing written");
    }

    #[test]
    fn malformed_prosemirror_json_names_the_field() {
        let bad = json!({"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text"}]}]});
        let error = Content::parse("default", &bad).expect_err("refused");
        assert_eq!(
            error,
            "default.content[0].content[0].text: expected a string"
        );
        let bad = json!({"type": "doc", "content": [{"attrs": {}}]});
        assert!(Content::parse("default", &bad).is_err());
        assert!(Content::parse("x", &json!(42)).is_err());
    }

    #[test]
    fn append_adds_nodes_at_the_end() {
        let doc = Doc::new();
        put(&doc, tiptap()).expect("put");
        let nodes = parse_nodes(
            "nodes",
            &[json!({"type": "paragraph", "content": [{"type": "text", "text": "appended"}]})],
            0,
        )
        .expect("parse");
        append(&mut doc.transact_mut(), "default", &nodes).expect("append");
        let read = reread(&doc);
        let content = read["default"]["content"].as_array().expect("content");
        assert_eq!(content.len(), 5);
        assert_eq!(content[4]["content"][0]["text"], json!("appended"));
        assert!(append(&mut doc.transact_mut(), "title", &nodes).is_err());
    }

    #[test]
    fn plain_text_of_each_kind() {
        let doc = Doc::new();
        put(&doc, tiptap()).expect("put");
        let txn = doc.transact();
        assert_eq!(root_text(&txn, "title").as_deref(), Some("A title"));
        assert_eq!(
            root_text(&txn, "default").as_deref(),
            Some("Title\nplain bold both link\nitem\n\n")
        );
        assert_eq!(root_text(&txn, "missing"), None);
    }

    #[test]
    fn overlapping_mark_names_lose_their_hash() {
        assert_eq!(mark_name("comment--AbCd12+/"), "comment");
        assert_eq!(mark_name("bold"), "bold");
        assert_eq!(mark_name("a--short"), "a--short");
    }
}
