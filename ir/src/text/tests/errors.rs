//! Parse errors (each points at its cause with line and column), refusal of deep nesting, and fuzzed
//! inputs that must never panic.

use super::*;

#[track_caller]
fn parse_err(src: &str) -> (u32, u32, String) {
    match parse(src) {
        Ok(g) => panic!("parsed:\n{}", print(&g)),
        Err(e) => (e.line, e.col, e.msg),
    }
}

#[test]
fn parse_errors_point_at_their_cause() {
    let head = "graph @g(%x: f32[2]) -> (f32[2]) {\n";
    let cases: Vec<(String, u32, u32, &str)> = vec![
        (
            format!("{head}  %0 = rleu(%x) : f32[2]\n  return %0\n}}"),
            2,
            8,
            "unknown op 'rleu' (did you mean 'relu'?)",
        ),
        (
            format!("{head}  %0 = leaky_relu(%x) {{alpah=0.5}} : f32[2]\n  return %0\n}}"),
            2,
            24,
            "no such attribute",
        ),
        (
            format!("{head}  %0 = leaky_relu(%x) {{alpha=\"a\"}} : f32[2]\n  return %0\n}}"),
            2,
            24,
            "expected a float",
        ),
        (
            format!("{head}  %0 = relu(%y) : f32[2]\n  return %0\n}}"),
            2,
            13,
            "%y is not defined",
        ),
        (
            format!("{head}  %x = relu(%x) : f32[2]\n  return %x\n}}"),
            2,
            3,
            "%x is already defined",
        ),
        (
            format!("{head}  %0 = relu(%x) : f32[3]\n  return %0\n}}"),
            3,
            10,
            "header declares f32[2]",
        ),
        (
            format!("{head}  %0 = relu(%x) : f23[2]\n  return %0\n}}"),
            2,
            19,
            "unknown element type 'f23' (did you mean 'f32'?)",
        ),
        (
            format!("{head}  %0 = relu(%x) : f32[2], f32[2]\n  return %0\n}}"),
            2,
            3,
            "1 results but 2 types",
        ),
        (
            format!("{head}  %0 = relu(%x)\n  return %0\n}}"),
            3,
            3,
            "expected ':'",
        ),
        (
            format!("{head}  %0 = const i8[2] [1, 300]\n  return %x\n}}"),
            2,
            24,
            "300 is out of range for i8",
        ),
        (
            format!("{head}  %0 = const i8[2] [1]\n  return %x\n}}"),
            2,
            20,
            "1 elements given for a constant of 2",
        ),
        (
            format!("{head}  %0 = const f32[N] [1.0]\n  return %x\n}}"),
            2,
            21,
            "static shape",
        ),
        (
            format!("{head}  %0 = const f32[2] sparse [1.0]\n  return %x\n}}"),
            2,
            21,
            "unknown constant format",
        ),
        (
            format!("{head}  %0 = const f32[2] csr [1.0, 2.0]\n  return %x\n}}"),
            2,
            25,
            "raw bytes",
        ),
        (
            format!("{head}  %0 = const f8e5m2[1] [1.0]\n  return %x\n}}"),
            2,
            25,
            "no element syntax",
        ),
        (
            format!("{head}  %0 = const f32[1] x\"abc\"\n  return %x\n}}"),
            2,
            21,
            "even number",
        ),
        (
            format!("{head}  %0 = const f32[1] [nan(0x3f800000)]\n  return %x\n}}"),
            2,
            22,
            "not a NaN",
        ),
        (
            format!("{head}  return %x\n}} extra"),
            3,
            3,
            "expected end of input",
        ),
        (format!("{head}  return %x\n"), 3, 1, "expected '}'"),
        (
            format!("{head}  %0 = relu(%x) : f32[2] q(scale=[1.0])\n  return %x\n}}"),
            2,
            26,
            "needs scale=[..] and zp=[..]",
        ),
        (
            "graph @g() -> () {\n  %0 = relu(\"unterminated) : f32[]\n".to_string(),
            2,
            13,
            "unterminated string",
        ),
        (
            "graph @g(%x: f32[2], %x: f32[2]) -> () {\n  return\n}".to_string(),
            1,
            22,
            "%x is already defined",
        ),
        (
            "graph @g() captures(%x as %0: f32[1]) -> () {\n  return\n}".to_string(),
            1,
            21,
            "by index",
        ),
        (
            "graph @g() -> () {\n  %01x = relu() : f32[]\n  return\n}".to_string(),
            2,
            6,
            "must be all digits or quoted",
        ),
        (
            "graph @g() -> () {\n  %0 = relu() : f32[-1]\n  return\n}".to_string(),
            2,
            21,
            "non-negative",
        ),
        (
            "graph @g() -> () {\n  return\n}\n\u{1F600}".to_string(),
            4,
            1,
            "unexpected character",
        ),
    ];
    let mut wrong = Vec::new();
    for (src, line, col, msg) in cases {
        let (l, c, m) = parse_err(&src);
        if (l, c) != (line, col) || !m.contains(msg) {
            wrong.push(format!(
                "expected {line}:{col} '{msg}', got {l}:{c} '{m}' for\n{src}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

#[test]
fn parse_error_displays_line_and_column() {
    let e = parse("graph @g() -> () {\n  return %nope\n}").unwrap_err();
    assert_eq!(e.to_string(), "2:10: %nope is not defined");
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    let n = 100_000;
    let types = format!(
        "graph @g(%x: {}f32[1]{}) -> () {{\n  return\n}}",
        "seq<".repeat(n),
        ">".repeat(n)
    );
    assert!(parse_err(&types).2.contains("nested more than"));
    let mut graphs = String::new();
    for _ in 0..n {
        graphs.push_str("graph @g() -> () {\n _ = identity() {body=");
    }
    assert!(parse_err(&graphs).2.contains("nested more than"));
    // Nesting within the limit parses (and then fails only on the unknown attribute).
    let ok_depth = crate::text::MAX_DEPTH - 1;
    let mut nested = String::new();
    for _ in 0..ok_depth {
        nested.push_str("graph @g() -> () {\n _ = identity() {body=");
    }
    nested.push_str("graph @g() -> () { return }");
    for _ in 0..ok_depth {
        nested.push_str("}\n return\n}");
    }
    let err = parse_err(&nested);
    assert!(err.2.contains("no such attribute"), "{err:?}");
    let seqs = format!(
        "graph @g(%x: {}f32[1]{}) -> () {{\n  return\n}}",
        "seq<".repeat(crate::text::MAX_DEPTH - 1),
        ">".repeat(crate::text::MAX_DEPTH - 1)
    );
    assert!(parse(&seqs).is_ok());
}

/// xorshift64*: a tiny deterministic generator for the fuzz test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Texts of every graph built in these tests, as seeds for mutation.
fn corpus() -> Vec<String> {
    let mut g1 = Graph::new("block");
    let x = g1.add_input("x", tensor(DType::F32, &[sym("N"), k(4)]));
    let w = g1.add_const("w", Constant::from_i64s(&[2], &[1, -1]));
    let y = node(
        &mut g1,
        LeakyRelu { alpha: 0.5 }.into(),
        vec![Some(x), None, Some(w)],
        vec![tensor(DType::F32, &[sym("N"), k(4)]), f32s(&[])],
    );
    g1.outputs = y;
    let mut texts = vec![
        print(&g1),
        print(&body_graph()),
        print(&const_graph(vec![
            bytes_const(DType::F16, &[2], vec![0, 0x3c, 0x01, 0x7e]),
            bytes_const(DType::U4, &[3], vec![0x21, 0x03]),
            Constant {
                ty: TensorType::known(DType::String, &[1]),
                format: ConstFormat::Dense,
                data: ConstData::Strings(vec!["s\"\n".into()]),
            },
        ])),
    ];
    let outer = outer_graph();
    let (sub, _) = attr_round_trip(&outer, &AttrValue::Graph(Box::new(body_graph())));
    texts.push(format!(
        "graph @o(%x: f32[2], %\"input.1\": i64[]) -> () {{\n  %0 = relu(%x) : f32[2]\n  _ = identity() {{body={sub}, q=[1.5, nan(0x7fc00001)], s=\"x\", t=const u8[2] q(axis=0, scale=[1.0,2.0], zp=[0,1]) [1, 2]}}\n  return\n}}\n"
    ));
    texts
}

#[test]
fn fuzzed_inputs_never_panic_and_whatever_parses_round_trips() {
    let seeds = corpus();
    let alphabet: Vec<char> =
        "%@#\"\\()[]{}<>,:=?*-_ \n0123456789abcfxqnie.graphconstreturncapturesas\u{e9}"
            .chars()
            .collect();
    let tokens = [
        "graph",
        "@g",
        "(",
        ")",
        "->",
        "{",
        "}",
        "return",
        "%0",
        "%x",
        "=",
        "relu",
        "const",
        "f32[2]",
        "i64[]",
        "[1, 2]",
        "#00ff",
        "x\"00\"",
        ":",
        ",",
        "_",
        "captures",
        "as",
        "seq<",
        ">",
        "q(",
        "scale=[1.0]",
        "zp=[0]",
        "nan(0x1)",
        "\"s\"",
        "{alpha=1.0}",
        "2:4",
        "csr",
        "f32[*]",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed_ok = 0;
    for round in 0..10_000 {
        let text: String = if round % 5 == 4 {
            (0..rng.below(40))
                .map(|_| tokens[rng.below(tokens.len())])
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            let mut c: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(c.len() + 1);
                match rng.below(6) {
                    5 => {
                        // Change one digit: keeps the text well formed more often than not.
                        let digits: Vec<usize> =
                            (0..c.len()).filter(|&i| c[i].is_ascii_digit()).collect();
                        if !digits.is_empty() {
                            let i = digits[rng.below(digits.len())];
                            c[i] = char::from(b'0' + rng.below(10) as u8);
                        }
                    }
                    0 => {
                        let end = (at + 1 + rng.below(8)).min(c.len());
                        c.drain(at.min(end)..end);
                    }
                    1 => c.insert(at, alphabet[rng.below(alphabet.len())]),
                    2 if at < c.len() => c[at] = alphabet[rng.below(alphabet.len())],
                    3 => {
                        let end = (at + rng.below(30)).min(c.len());
                        let dup: Vec<char> = c[at.min(end)..end].to_vec();
                        let to = rng.below(c.len() + 1);
                        c.splice(to..to, dup);
                    }
                    _ => c.truncate(at),
                }
            }
            c.into_iter().collect()
        };
        if let Ok(g) = parse(&text) {
            parsed_ok += 1;
            let printed = print(&g);
            let again = parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}\nfrom\n{text}"));
            assert_eq!(print(&again), printed, "from\n{text}");
        }
    }
    assert!(parsed_ok > 50, "only {parsed_ok} mutants parsed");
}
