//! The `carve compress` subcommand: int8 post-training quantization with calibration, an accuracy
//! budget, a QDQ ONNX model and a report directory (see `carve::compress`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use carve::compress::data::{DataSpec, load as load_data};
use carve::compress::metric::MetricSpec;
use carve::compress::{Options, Progress, compress_int8};
use carve::passes::quantize::Calibrator;

/// Arguments of `carve compress`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  carve compress model.onnx --calib calib.npz -o model.int8.onnx --report report/
  carve compress digits.onnx --calib digits.npz:X=Xtr --eval digits.npz --labels y --metric accuracy \\
      -o digits.int8.onnx --report r/
  carve compress minilm.onnx --calib sentences.npz --calib-indices calib_idx --eval sentences.npz \\
      --metric cosine:sentence_embedding -o minilm.int8.onnx --report r/

DATA is a .npz archive whose arrays are named like the model's inputs (first axis = samples; add
:INPUT=ARRAY,... to rename), or a folder of test_data_set_*/input_N.pb (or .npy) folders.
Integer arrays are converted to the input's integer type when every value fits.

Writes OUT.onnx (standard ONNX, QDQ: runs in ONNX Runtime and in carve) and, in the report folder,
report.md and report.json (deterministic) and timing.md / timing.json (latency, measured).")]
pub struct CompressArgs {
    /// The float .onnx model.
    pub model: PathBuf,
    /// Calibration data (DATA, see below).
    #[arg(long, value_name = "DATA")]
    pub calib: DataSpec,
    /// Name of an integer array in the calibration archive holding the sample indices to calibrate
    /// on (e.g. `calib_idx`); default: every sample.
    #[arg(long, value_name = "ARRAY")]
    pub calib_indices: Option<String>,
    /// At most this many calibration samples (the first ones after --calib-indices).
    #[arg(long, value_name = "N")]
    pub calib_samples: Option<usize>,
    /// Evaluation data for the accuracy budget and the report (default: the calibration data).
    #[arg(long, value_name = "DATA")]
    pub eval: Option<DataSpec>,
    /// Name of an integer array of per-sample labels in the evaluation archive (for
    /// `--metric accuracy`).
    #[arg(long, value_name = "ARRAY")]
    pub labels: Option<String>,
    /// The metric the budget holds: `top1` (agreement with the float model's argmax, default),
    /// `accuracy` (against --labels) or `cosine` (minimum cosine to the float output), each
    /// optionally `:OUTPUT` (default: the first f32 output).
    #[arg(long, value_name = "METRIC", default_value = "top1")]
    pub metric: MetricSpec,
    /// Largest allowed drop of the metric against the float model (default: 0.005 for top1 and
    /// accuracy, 0.01 for cosine); the most sensitive layers stay float until it holds.
    #[arg(long, value_name = "X")]
    pub max_drop: Option<f64>,
    /// Activation calibrator: minmax, percentile[:P] (default percentile:99.99), mse or entropy.
    #[arg(long, value_name = "NAME", default_value = "percentile:99.99")]
    pub calibrator: Calibrator,
    /// Signed symmetric (s8) activations instead of unsigned asymmetric (u8).
    #[arg(long)]
    pub signed_activations: bool,
    /// Evaluation samples used to rank each layer's sensitivity.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub sensitivity_samples: usize,
    /// Timed runs per model for the latency comparison (0: skip timing).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub timing_runs: usize,
    /// Threads for running the models (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// The compressed model to write (.onnx).
    #[arg(short, long, value_name = "OUT.onnx")]
    pub output: PathBuf,
    /// Folder for the report (created if missing).
    #[arg(long, value_name = "DIR")]
    pub report: PathBuf,
}

/// Progress bars on standard error.
struct Bars {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress for Bars {
    fn start(&mut self, what: &str, total: u64) {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg:42} {bar:30} {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_message(what.to_string());
        self.bar = Some(b);
    }

    fn inc(&mut self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }

    fn note(&mut self, msg: &str) {
        eprintln!("{msg}");
    }
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    carve::output::write_atomic(path, bytes)
        .with_context(|| format!("cannot write '{}'", path.display()))
}

/// Runs `carve compress`.
pub fn compress(a: &CompressArgs) -> anyhow::Result<()> {
    let proto = carve::frontend::decode_file(&a.model)?;
    let model = carve::load(&a.model)?;
    let mut calib = load_data(&a.calib, &model.graph, None, a.calib_indices.as_deref())
        .context("calibration data")?;
    if let Some(n) = a.calib_samples {
        calib = calib.take(n);
    }
    let eval = match &a.eval {
        Some(spec) => {
            load_data(spec, &model.graph, a.labels.as_deref(), None).context("evaluation data")?
        }
        None => {
            anyhow::ensure!(
                a.labels.is_none(),
                "--labels needs --eval (labels are read from the evaluation archive)"
            );
            calib.clone()
        }
    };
    eprintln!(
        "{} quantizable layers; calibration: {} samples from {}; evaluation: {} samples from {}",
        carve::passes::quantize::find_layers(&model.graph).len(),
        calib.len(),
        calib.source,
        eval.len(),
        eval.source
    );
    let opts = Options {
        calibrator: a.calibrator,
        signed_activations: a.signed_activations,
        metric: a.metric.clone(),
        max_drop: a.max_drop,
        sensitivity_samples: a.sensitivity_samples,
        timing_runs: a.timing_runs,
        threads: a.threads,
    };
    let out = compress_int8(
        &proto,
        &model,
        &calib,
        &eval,
        &opts,
        &mut Bars { bar: None },
    )?;
    std::fs::create_dir_all(&a.report)
        .with_context(|| format!("cannot create '{}'", a.report.display()))?;
    write(&a.output, &out.onnx)?;
    write(
        &a.report.join("report.md"),
        out.report.to_markdown().as_bytes(),
    )?;
    write(
        &a.report.join("report.json"),
        out.report.to_json().as_bytes(),
    )?;
    if let Some(t) = &out.timing {
        write(&a.report.join("timing.md"), t.to_markdown().as_bytes())?;
        write(&a.report.join("timing.json"), t.to_json().as_bytes())?;
    }
    let d = out.report.data();
    eprintln!(
        "{}: float {:.4} -> int8 {:.4}; {} of {} layers int8; model {:.2} MB -> {:.2} MB",
        d.metric,
        d.float_score.value,
        d.int8_score.value,
        d.layers.iter().filter(|l| l.int8).count(),
        d.layers.len(),
        d.float_bytes as f64 / 1e6,
        d.int8_bytes as f64 / 1e6
    );
    if let Some(t) = &out.timing {
        eprintln!(
            "carve latency: float {:.3} ms, int8 {:.3} ms ({:.2}x)",
            t.float_ms,
            t.int8_ms,
            t.int8_ms / t.float_ms
        );
    }
    eprintln!(
        "wrote {} and {}/report.md",
        a.output.display(),
        a.report.display()
    );
    Ok(())
}
