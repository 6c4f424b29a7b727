//! The `carve compress` subcommand: int8 post-training quantization with calibration (or weight-only
//! int4/int2 MatMul weights, channel pruning, unstructured sparsity), an accuracy budget, an ONNX model
//! and a report directory (see `carve::compress`).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use carve::compress::data::{DataSpec, load as load_data};
use carve::compress::metric::MetricSpec;
use carve::compress::{
    NBitsOptions, Options, Progress, PruneOptions, SparsityOptions, compress_int8, compress_nbits,
    compress_prune, compress_sparsity,
};
use carve::passes::quantize::Calibrator;

/// Arguments of `carve compress`.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  carve compress model.onnx --calib calib.npz -o model.int8.onnx --report report/
  carve compress cls.onnx --prune 0.3 --calib cls.npz --calib-indices calib_idx --eval cls.npz \\
      --labels y --metric accuracy -o cls.pruned.onnx --report rp/
  carve compress digits.onnx --calib digits.npz:X=Xtr --eval digits.npz --labels y --metric accuracy \\
      -o digits.int8.onnx --report r/
  carve compress digits.onnx --sparsity 0.5 --calib digits.npz:X=Xtr --eval digits.npz --labels y \\
      --metric accuracy -o digits.sparse.onnx --report rs/
  carve compress minilm.onnx --calib sentences.npz --calib-indices calib_idx --eval sentences.npz \\
      --metric cosine:sentence_embedding -o minilm.int8.onnx --report r/
  carve compress minilm.onnx --weights int4 --calib sentences.npz --calib-indices calib_idx \\
      --eval sentences.npz --metric cosine:sentence_embedding -o minilm.int4.onnx --report r4/

DATA is a .npz archive whose arrays are named like the model's inputs (first axis = samples; add
:INPUT=ARRAY,... to rename), or a folder of test_data_set_*/input_N.pb (or .npy) folders.
Integer arrays are converted to the input's integer type when every value fits.

Writes OUT.onnx (int8: standard ONNX in QDQ form; int4/int2: MatMul weights as ONNX Runtime's
com.microsoft MatMulNBits; both run in ONNX Runtime and in carve) and, in the report folder,
report.md and report.json (deterministic) and timing.md / timing.json (latency, measured).")]
pub struct CompressArgs {
    /// The float .onnx model.
    pub model: PathBuf,
    /// Calibration data (DATA, see below); int8 calibrates activation ranges on it, --weights
    /// int4/int2 quantize with GPTQ on it (without it: round-to-nearest, and --eval is needed).
    #[arg(long, value_name = "DATA", required_unless_present = "eval")]
    pub calib: Option<DataSpec>,
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
    /// What to compress to: `int8` (weights and activations, QDQ) or `int4` / `int2` (weight-only:
    /// MatMul weights block-quantized as com.microsoft MatMulNBits, activations stay float).
    #[arg(long, value_name = "FORMAT", default_value = "int8")]
    pub weights: WeightFormat,
    /// Channel pruning instead of quantization: remove this fraction (0 to 1) of the channels of
    /// every prunable channel group (whole filters, across residual adds, concats, batch norms and
    /// flattens), repaired by bias compensation when --calib is given; writes a smaller dense float
    /// model. Not combined with --weights in one run yet: quantize the pruned model in a second run.
    #[arg(long, value_name = "RATIO", conflicts_with = "weights")]
    pub prune: Option<f64>,
    /// Unstructured sparsity instead of quantization: set this fraction (0 to 1) of the weights of
    /// every MatMul/Gemm/Conv layer to zero, per output channel; writes the float model with the
    /// zeros in its dense weights. Not combined with --prune or --weights in one run yet.
    #[arg(long, value_name = "RATIO", conflicts_with_all = ["weights", "prune"])]
    pub sparsity: Option<f64>,
    /// How --sparsity chooses the weights: `magnitude` (smallest |w| per output channel) or
    /// `sparsegpt` (OBS-style with error compensation, on the layers' calibration inputs; needs
    /// --calib). Default: with --calib both are measured and the better one kept, else magnitude.
    #[arg(long, value_name = "METHOD", requires = "sparsity")]
    pub sparsity_method: Option<carve::passes::sparsify::Method>,
    /// How --prune scores channels: `l1` (sum of |weights| of the channel's filters, default) or
    /// `l2` (their Euclidean norm).
    #[arg(long, value_name = "NORM", default_value = "l1")]
    pub prune_criterion: carve::passes::prune::Criterion,
    /// Weights per block along K for --weights int4/int2 (a power of two, at least 16).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub block_size: usize,
    /// Per-block zero points for --weights int4/int2 (default: symmetric blocks, no zero points).
    #[arg(long)]
    pub asymmetric_blocks: bool,
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

/// The `--weights` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightFormat {
    /// int8 weights and activations (QDQ).
    Int8,
    /// 4-bit MatMul weights (MatMulNBits), float activations.
    Int4,
    /// 2-bit MatMul weights (MatMulNBits), float activations.
    Int2,
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
    let calib = match &a.calib {
        Some(spec) => {
            let mut c = load_data(spec, &model.graph, None, a.calib_indices.as_deref())
                .context("calibration data")?;
            if let Some(n) = a.calib_samples {
                c = c.take(n);
            }
            Some(c)
        }
        None => None,
    };
    let eval = match (&a.eval, &calib) {
        (Some(spec), _) => {
            load_data(spec, &model.graph, a.labels.as_deref(), None).context("evaluation data")?
        }
        (None, Some(c)) => {
            anyhow::ensure!(
                a.labels.is_none(),
                "--labels needs --eval (labels are read from the evaluation archive)"
            );
            c.clone()
        }
        (None, None) => anyhow::bail!("give --eval or --calib data to measure accuracy on"),
    };
    eprintln!(
        "{} quantizable layers; calibration: {}; evaluation: {} samples from {}",
        carve::passes::quantize::find_layers(&model.graph).len(),
        calib
            .as_ref()
            .map(|c| format!("{} samples from {}", c.len(), c.source))
            .unwrap_or_else(|| "none".into()),
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
    let bits = match a.weights {
        WeightFormat::Int8 => None,
        WeightFormat::Int4 => Some(4),
        WeightFormat::Int2 => Some(2),
    };
    let out = match (a.prune, bits) {
        (None, _) if a.sparsity.is_some() => {
            let ratio = a.sparsity.unwrap_or_default();
            anyhow::ensure!(
                (0.0..1.0).contains(&ratio),
                "--sparsity takes a fraction in [0, 1), got {ratio}"
            );
            anyhow::ensure!(
                a.weights == WeightFormat::Int8,
                "--sparsity and --weights are not combined in one run yet: sparsify first, then \
                 quantize the sparse model"
            );
            compress_sparsity(
                &proto,
                &model,
                calib.as_ref(),
                &eval,
                SparsityOptions {
                    ratio,
                    method: a.sparsity_method,
                },
                &opts,
                &mut Bars { bar: None },
            )?
        }
        (Some(ratio), _) => {
            anyhow::ensure!(
                (0.0..1.0).contains(&ratio),
                "--prune takes a fraction in [0, 1), got {ratio}"
            );
            anyhow::ensure!(
                a.weights == WeightFormat::Int8,
                "--prune and --weights are not combined in one run yet: prune first, then quantize \
                 the pruned model"
            );
            compress_prune(
                &proto,
                &model,
                calib.as_ref(),
                &eval,
                PruneOptions {
                    ratio,
                    criterion: a.prune_criterion,
                },
                &opts,
                &mut Bars { bar: None },
            )?
        }
        (None, None) => {
            let calib = calib.context(
                "int8 needs --calib data to calibrate activation ranges (or use --weights int4)",
            )?;
            compress_int8(
                &proto,
                &model,
                &calib,
                &eval,
                &opts,
                &mut Bars { bar: None },
            )?
        }
        (None, Some(bits)) => compress_nbits(
            &proto,
            &model,
            calib.as_ref(),
            &eval,
            NBitsOptions {
                bits,
                block_size: a.block_size,
                symmetric: !a.asymmetric_blocks,
            },
            &opts,
            &mut Bars { bar: None },
        )?,
    };
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
    let q = d.scheme.label();
    if let Some(p) = &d.pruning {
        eprintln!(
            "pruned: params {} -> {}, MFLOPs {:.3} -> {:.3}, model {:.3} MB -> {:.3} MB; {}: float {:.4}, pruned {:.4} before repair, {:.4} final",
            p.params.0,
            p.params.1,
            p.flops.0 / 1e6,
            p.flops.1 / 1e6,
            d.float_bytes as f64 / 1e6,
            d.compressed_bytes as f64 / 1e6,
            d.metric,
            d.float_score.value,
            p.score_before_repair.value,
            d.compressed_score.value
        );
    }
    if let Some(sp) = &d.sparsity {
        let (nf, ns) = sp.nonzero();
        eprintln!(
            "sparse ({}): {} of {} layers, nonzero weights {nf} -> {ns}; {}: float {:.4}, sparse {:.4}",
            sp.method,
            sp.layers.iter().filter(|l| l.sparse).count(),
            sp.layers.len(),
            d.metric,
            d.float_score.value,
            d.compressed_score.value
        );
    }
    if d.pruning.is_none() && d.sparsity.is_none() {
        eprintln!(
            "{}: float {:.4} -> {q} {:.4}; {} of {} layers {q}; model {:.2} MB -> {:.2} MB",
            d.metric,
            d.float_score.value,
            d.compressed_score.value,
            d.layers.iter().filter(|l| l.quantized).count(),
            d.layers.len(),
            d.float_bytes as f64 / 1e6,
            d.compressed_bytes as f64 / 1e6
        );
    }
    if let Some(t) = &out.timing {
        eprintln!(
            "carve latency: float {:.3} ms, {q} {:.3} ms ({:.2}x)",
            t.float_ms,
            t.compressed_ms,
            t.compressed_ms / t.float_ms
        );
    }
    eprintln!(
        "wrote {} and {}/report.md",
        a.output.display(),
        a.report.display()
    );
    Ok(())
}
