//! The long differential run of random graphs (interpreter vs JIT, see `carve::fuzz`):
//!
//! ```text
//! cargo run --release --example fuzz_graphs -- --count 100000 --start 0 [--out tests/data/random_graphs]
//! ```
//!
//! Generates the graphs of seeds `start..start+count`, checks each, prints progress and a summary, and
//! writes every failing graph as IR text (`// seed:`, `// scale:` and `// error:` comment lines, then
//! the graph) to `<out>/seed_<N>.ir`, which `tests/random_graphs.rs` replays. Exits with status 1 if
//! anything failed. `--print SEED` prints the IR text of one seed's graph instead.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use carve::fuzz;

fn main() {
    let mut count = 1000u64;
    let mut start = 0u64;
    let mut out = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/random_graphs"
    ));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--count" => count = val().parse().unwrap_or_else(|_| usage("bad --count")),
            "--start" => start = val().parse().unwrap_or_else(|_| usage("bad --start")),
            "--out" => out = PathBuf::from(val()),
            "--print" => {
                let seed = val().parse().unwrap_or_else(|_| usage("bad --print"));
                print!("{}", fuzz::to_text(&fuzz::generate(seed)));
                return;
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    // Panics are reported per seed; keep their messages off the terminal.
    std::panic::set_hook(Box::new(|_| {}));
    let t0 = Instant::now();
    let (mut native, mut failed) = (0u64, Vec::new());
    // Largest float error as a fraction of the tolerance, and its seed.
    let mut worst = (0.0f64, 0u64);
    let mut fallbacks: BTreeMap<String, u64> = BTreeMap::new();
    for seed in start..start + count {
        let case = fuzz::generate(seed);
        match fuzz::check_catching(&case.graph, &case.inputs, case.scale) {
            Ok(o) => {
                native += u64::from(o.native);
                if o.worst > worst.0 {
                    worst = (o.worst, seed);
                }
                for op in o.fallback_ops {
                    *fallbacks.entry(op).or_default() += 1;
                }
            }
            Err(e) => {
                let first = e.lines().next().unwrap_or_default().to_string();
                eprintln!("seed {seed}: {first}");
                let text =
                    fuzz::to_text(&case).replacen("\n", &format!("\n// error: {first}\n"), 1);
                if let Err(w) = std::fs::create_dir_all(&out)
                    .and_then(|()| std::fs::write(out.join(format!("seed_{seed}.ir")), text))
                {
                    eprintln!("cannot write the graph of seed {seed}: {w}");
                }
                failed.push(seed);
            }
        }
        let done = seed - start + 1;
        if done.is_multiple_of(1000) {
            eprintln!(
                "{done}/{count} graphs, {} failed, {:.0} s",
                failed.len(),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "{count} graphs (seeds {start}..{}): {native} fully native, {} failed {:?}, {:.1} s",
        start + count,
        failed.len(),
        failed,
        t0.elapsed().as_secs_f64()
    );
    println!("nodes that fell back, by op: {fallbacks:?}");
    println!(
        "largest float error: {:.3e} of the tolerance (seed {})",
        worst.0, worst.1
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("{msg}\nusage: fuzz_graphs [--count N] [--start S] [--out DIR] | --print SEED");
    std::process::exit(2)
}
