//! The README's "Using pharox from any language" examples run as written: its
//! ```sh blocks in order in one bash (curl, jq), then its ```python block
//! with pharox-sdk, against a fresh `pharox serve`, with the address and the
//! key put in. The ```json or ```text block after each is what it must print
//! (JSON compared as values, text line by line); UUIDs may differ but
//! consistently (the same id in two places stays the same), and times and
//! the `date` header are not compared.

mod server;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pharox_core::testkit::test_python;
use serde_json::Value;
use server::{Serve, output_within};

const HEADING: &str = "## Using pharox from any language";
/// What the README's examples call the server.
const README_ADDR: &str = "127.0.0.1:8000";
/// Far beyond what a handful of local requests take.
const LIMIT: Duration = Duration::from_secs(120);
/// Separates the blocks' outputs in the one bash run.
const MARK: &str = "@@readme-block";

/// A fenced block of the section.
#[derive(Debug)]
struct Block {
    lang: String,
    code: String,
    /// Its opening fence's line in README.md (1-based).
    line: usize,
}

/// An example to run and what it must print.
#[derive(Debug)]
struct Example {
    code: Block,
    expected: Option<Block>,
}

/// The fenced blocks under `heading`, up to the next `## ` heading.
fn section_blocks(readme: &str, heading: &str) -> Vec<Block> {
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
fn examples(blocks: &[Block], lang: &str) -> Vec<Example> {
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
struct Names(HashMap<String, usize>);

impl Names {
    fn uuid(&mut self, s: &str) -> String {
        let next = self.0.len();
        format!("<uuid {}>", self.0.entry(s.to_owned()).or_insert(next))
    }
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The length of an ISO 8601 time (`2025-01-31T12:00:00.123000+00:00`, or
/// with a space as Python prints it) at the start of `b`, if there is one.
fn time_len(b: &[u8]) -> Option<usize> {
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

/// `s` with UUIDs renamed, times as `<time>` and a `date:` header line as
/// `date: <date>`.
fn normalize(s: &str, names: &mut Names) -> String {
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

fn normalize_json(v: &Value, names: &mut Names) -> Value {
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

fn json_values(text: &str, what: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{what} is not JSON ({e}):\n{text}"))
}

/// The trimmed, non-blank-edged lines of `s`.
fn lines(s: &str) -> Vec<String> {
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
fn check_output(example: &Example, got: &str, names: &mut (Names, Names)) {
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

/// Runs the sh examples in one bash; returns each one's output.
fn run_shell(examples: &[Example], addr: &str, key: &str) -> Vec<String> {
    let mut script = String::new();
    for (i, ex) in examples.iter().enumerate() {
        let code = ex.code.code.replace(README_ADDR, addr);
        script.push_str(&format!(
            "printf '\\n{MARK} start {i}\\n'\n{code}printf '\\n{MARK} end {i} %d\\n' $?\n"
        ));
    }
    let out = output_within(
        Command::new("bash")
            .args(["--noprofile", "--norc", "-c", &script])
            .env("PHAROX_API_KEY", key),
        LIMIT,
        "the README's sh blocks",
    );
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

fn require(tool: &str) {
    let found = Command::new("bash")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is required by the README's HTTP examples; \
         scripts/test.sh installs it (apt-get install -y {tool})"
    );
}

#[test]
fn readme_http_examples_print_what_the_readme_shows() {
    require("curl");
    require("jq");
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let blocks = section_blocks(&readme, HEADING);
    let shell = examples(&blocks, "sh");
    let python = examples(&blocks, "python");
    assert!(
        shell.len() >= 5 && python.len() == 1,
        "the section lost its examples: {} sh, {} python",
        shell.len(),
        python.len()
    );

    let key = format!("readme-{:016x}", fastrand::u64(..));
    let serve = Serve::start(&[], Some(&key));
    let addr = serve.base().trim_start_matches("http://").to_owned();
    let mut names = (Names::default(), Names::default());
    for (ex, got) in shell.iter().zip(run_shell(&shell, &addr, &key)) {
        check_output(ex, &got, &mut names);
    }

    let py = &python[0];
    let out = output_within(
        Command::new(test_python("the README's Python example"))
            .args(["-c", &py.code.code.replace(README_ADDR, &addr)])
            .env("PHAROX_API_KEY", &key),
        LIMIT,
        "the README's Python example",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "README.md:{}: the Python example failed ({}):\n{stdout}\n{}",
        py.code.line,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    check_output(py, &stdout, &mut names);
}

#[test]
fn normalizing_keeps_everything_but_ids_and_times() {
    let mut names = Names::default();
    let text = "a 12dd0a25-7677-55bc-a155-e57b45175f1a b 2025-01-31T12:00:00.123000+00:00 \
                12dd0a25-7677-55bc-a155-e57b45175f1a 7c50a97e-0d7a-4e9e-afa8-60afb3f58c7d \
                2025-01-31 12:01:00+00:00\nDate: Fri, 31 Jan 2025 12:00:01 GMT\n";
    assert_eq!(
        normalize(text, &mut names),
        "a <uuid 0> b <time> <uuid 0> <uuid 1> <time>\ndate: <date>\n"
    );
    // Not ids: too short, or glued to other characters.
    let kept = "12dd0a25-7677-55bc-a155-e57b45175f1 x12dd0a25-7677-55bc-a155-e57b45175f1a";
    assert_eq!(normalize(kept, &mut names).trim_end(), kept);
}
