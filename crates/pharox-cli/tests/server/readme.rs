//! Runnable README sections: the fenced blocks under a heading, run in
//! order in one bash, each compared with the ```json or ```text block after
//! it. UUIDs may differ but consistently (the same id in two places stays
//! the same); times, durations in seconds (`0.02 s`) and the `date` header
//! are not compared.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::output_within;

/// Separates the blocks' outputs in the one bash run.
const MARK: &str = "@@readme-block";

/// A fenced block of the section.
#[derive(Debug)]
pub struct Block {
    /// The fence's language.
    pub lang: String,
    /// The block's text.
    pub code: String,
    /// Its opening fence's line in README.md (1-based).
    pub line: usize,
}

/// An example to run and what it must print.
#[derive(Debug)]
pub struct Example {
    /// The code.
    pub code: Block,
    /// What it prints.
    pub expected: Option<Block>,
}

/// The fenced blocks under `heading`, up to the next `## ` heading.
pub fn section_blocks(readme: &str, heading: &str) -> Vec<Block> {
    let mut lines = readme.lines().enumerate();
    assert!(
        lines.any(|(_, l)| l.trim_end() == heading),
        "README.md has no {heading:?}"
    );
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in lines {
        match open.as_mut() {
            None if line.starts_with("## ") => break,
            None => {
                if let Some(lang) = line.strip_prefix("```") {
                    open = Some(Block {
                        lang: lang.trim().to_owned(),
                        code: String::new(),
                        line: i + 1,
                    });
                }
            }
            Some(_) if line.trim_end() == "```" => blocks.push(open.take().unwrap()),
            Some(b) => {
                b.code.push_str(line);
                b.code.push('\n');
            }
        }
    }
    assert!(open.is_none(), "an unclosed block in {heading:?}");
    blocks
}

/// Each `lang` block with the ```json / ```text block right after it, if any.
pub fn examples(blocks: &[Block], lang: &str) -> Vec<Example> {
    let mut out = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        if b.lang != lang {
            continue;
        }
        let expected = blocks
            .get(i + 1)
            .filter(|n| n.lang == "json" || n.lang == "text");
        out.push(Example {
            code: Block {
                code: b.code.clone(),
                lang: b.lang.clone(),
                line: b.line,
            },
            expected: expected.map(|e| Block {
                lang: e.lang.clone(),
                code: e.code.clone(),
                line: e.line,
            }),
        });
    }
    out
}

/// UUIDs renamed `<uuid N>` in order of first appearance, one namespace per
/// side, so two outputs agree when their ids are the same up to renaming.
#[derive(Default)]
pub struct Names(HashMap<String, usize>);

impl Names {
    fn uuid(&mut self, s: &str) -> String {
        let next = self.0.len();
        format!("<uuid {}>", self.0.entry(s.to_owned()).or_insert(next))
    }
}

pub fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The length of an ISO 8601 time (`2025-01-31T12:00:00.123000+00:00`, or
/// with a space as Python prints it) at the start of `b`, if there is one.
pub fn time_len(b: &[u8]) -> Option<usize> {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() {
        return None;
    }
    let fits = shape.iter().zip(b).all(|(want, c)| match want {
        b'd' => c.is_ascii_digit(),
        b'T' => *c == b'T' || *c == b' ',
        _ => want == c,
    });
    if !fits {
        return None;
    }
    let mut n = shape.len();
    if b.get(n) == Some(&b'.') {
        n += 1 + b[n + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    if b[n..].starts_with(b"+00:00") {
        n += 6;
    } else if b.get(n) == Some(&b'Z') {
        n += 1;
    }
    Some(n)
}

/// The length of a duration in seconds (`12.5 s`, as the CLI prints
/// elapsed and remaining times) at the start of `b`, if there is one.
pub fn seconds_len(b: &[u8]) -> Option<usize> {
    let int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if int == 0 || b.get(int) != Some(&b'.') {
        return None;
    }
    let frac = b[int + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let n = int + 1 + frac;
    (frac > 0
        && b[n..].starts_with(b" s")
        && b.get(n + 2).is_none_or(|c| !c.is_ascii_alphanumeric()))
    .then_some(n + 2)
}

/// `s` with UUIDs renamed, times as `<time>`, seconds as `<seconds> s` and a `date:` header line as
/// `date: <date>`.
pub fn normalize(s: &str, names: &mut Names) -> String {
    let mut out = String::new();
    for line in s.lines() {
        if line.to_ascii_lowercase().starts_with("date:") {
            out.push_str("date: <date>\n");
            continue;
        }
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
            if boundary && b.len() >= i + 36 && is_uuid(&b[i..i + 36]) {
                out.push_str(&names.uuid(&line[i..i + 36]));
                i += 36;
            } else if let Some(n) = time_len(&b[i..]).filter(|_| boundary) {
                out.push_str("<time>");
                i += n;
            } else if let Some(n) = seconds_len(&b[i..]).filter(|_| boundary) {
                out.push_str("<seconds> s");
                i += n;
            } else {
                let c = line[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
        out.push('\n');
    }
    out
}

pub fn normalize_json(v: &Value, names: &mut Names) -> Value {
    match v {
        Value::String(s) => Value::String(normalize(s, names).trim_end().to_owned()),
        Value::Array(a) => Value::Array(a.iter().map(|x| normalize_json(x, names)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), normalize_json(x, names)))
                .collect(),
        ),
        other => other.clone(),
    }
}

pub fn json_values(text: &str, what: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{what} is not JSON ({e}):\n{text}"))
}

/// The trimmed, non-blank-edged lines of `s`.
pub fn lines(s: &str) -> Vec<String> {
    let all: Vec<String> = s.lines().map(|l| l.trim_end().to_owned()).collect();
    let start = all.iter().position(|l| !l.is_empty()).unwrap_or(all.len());
    let end = all
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |e| e + 1);
    all[start..end].to_vec()
}

/// Asserts that `got` (what `example` printed) is what its expected block
/// shows, renaming ids on each side with its own `Names`.
pub fn check_output(example: &Example, got: &str, names: &mut (Names, Names)) {
    let at = example.code.line;
    match &example.expected {
        None => assert!(
            got.trim().is_empty(),
            "README.md:{at}: printed output but shows none:\n{got}"
        ),
        Some(e) if e.lang == "json" => {
            let want: Vec<Value> = json_values(&e.code, &format!("README.md:{}", e.line))
                .iter()
                .map(|v| normalize_json(v, &mut names.0))
                .collect();
            let have: Vec<Value> = json_values(got, &format!("the output of README.md:{at}"))
                .iter()
                .map(|v| normalize_json(v, &mut names.1))
                .collect();
            assert_eq!(
                have, want,
                "README.md:{at}: the output differs from README.md:{} (normalized)\n--- printed ---\n{got}",
                e.line
            );
        }
        Some(e) => {
            let want = lines(&normalize(&e.code, &mut names.0));
            let have = lines(&normalize(got, &mut names.1));
            assert_eq!(
                have, want,
                "README.md:{at}: the output differs from README.md:{} (normalized)\n--- printed ---\n{got}",
                e.line
            );
        }
    }
}

/// Runs the sh examples in one bash, each with every `(from, to)` of
/// `replace` put in and `env` set; returns each one's output, and fails
/// naming the block that exited non-zero.
pub fn run_shell(
    examples: &[Example],
    replace: &[(&str, &str)],
    env: &[(&str, &str)],
    dir: Option<&std::path::Path>,
    limit: Duration,
) -> Vec<String> {
    let mut script = String::new();
    for (i, ex) in examples.iter().enumerate() {
        let mut code = ex.code.code.clone();
        for (from, to) in replace {
            code = code.replace(from, to);
        }
        script.push_str(&format!(
            "printf '\\n{MARK} start {i}\\n'\n{code}printf '\\n{MARK} end {i} %d\\n' $?\n"
        ));
    }
    let mut bash = Command::new("bash");
    bash.args(["--noprofile", "--norc", "-c", &script]);
    for (k, v) in env {
        bash.env(k, v);
    }
    if let Some(dir) = dir {
        bash.current_dir(dir);
    }
    let out = output_within(&mut bash, limit, "the README's sh blocks");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bash failed ({}): {stderr}",
        out.status
    );
    let mut outputs = Vec::new();
    for (i, ex) in examples.iter().enumerate() {
        let start = format!("{MARK} start {i}\n");
        let end = format!("\n{MARK} end {i} ");
        let from = stdout
            .find(&start)
            .unwrap_or_else(|| panic!("README.md:{}: did not run\n{stderr}", ex.code.line))
            + start.len();
        let to = from
            + stdout[from..]
                .find(&end)
                .unwrap_or_else(|| panic!("README.md:{}: did not finish\n{stderr}", ex.code.line));
        let status = stdout[to + end.len()..].lines().next().unwrap_or_default();
        assert_eq!(
            status,
            "0",
            "README.md:{}: exited {status}\n--- code ---\n{}--- stdout ---\n{}\n--- stderr ---\n{stderr}",
            ex.code.line,
            ex.code.code,
            &stdout[from..to]
        );
        outputs.push(stdout[from..to].to_owned());
    }
    outputs
}
