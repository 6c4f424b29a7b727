//! Importers for the misc ONNX ops (see `carve_ir::ops::misc`): Dropout, random generators,
//! NonMaxSuppression, string ops, ImageDecoder, TfIdfVectorizer, losses, the `ai.onnx.preview.training`
//! optimizers and the `ai.onnx.ml` ops.
//!
//! Upgrades: Dropout before opset 12 had `ratio` as an attribute (now a constant input) and before
//! opset 10 its mask had the data's type (a cast of the bool mask is added); `Random*Like` become the
//! base ops with an input; LabelEncoder-1 (`classes_strings`) and the typed attribute forms of later
//! versions all become keys/values/default constants with the version's defaults made explicit.

use carve_ir::ops::elementwise::Cast;
use carve_ir::ops::misc::{
    Adagrad, Adam, ArrayFeatureExtractor, Bernoulli, Binarizer, CaseChange, Dropout, ImageDecoder,
    LabelEncoder, LinearClassifier, Momentum, MomentumMode, Multinomial, NllLoss,
    NonMaxSuppression, NormKind, Normalizer, PixelFormat, PostTransform, RandomNormal,
    RandomUniform, Reduction, RegexFullMatch, Scaler, SoftmaxCrossEntropyLoss, StringConcat,
    StringNormalizer, StringSplit, TfIdfMode, TfIdfVectorizer, TreeAggregate, TreeEnsemble, ZipMap,
};
use carve_ir::{Buffer, ConstData, ConstFormat, Constant, DType, TensorType, ValueId};

use super::OpImporter;
use crate::error::ImportError;
use crate::onnx::ctx::NodeCtx;

type R = Result<Vec<ValueId>, ImportError>;

const ONNX: &str = "ai.onnx";
const ML: &str = "ai.onnx.ml";
const TRAINING: &str = "ai.onnx.preview.training";

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    OpImporter {
        domain: ONNX,
        op_type: "Dropout",
        import: import_dropout,
    },
    OpImporter {
        domain: ONNX,
        op_type: "RandomNormal",
        import: |cx| random_normal(cx, false),
    },
    OpImporter {
        domain: ONNX,
        op_type: "RandomNormalLike",
        import: |cx| random_normal(cx, true),
    },
    OpImporter {
        domain: ONNX,
        op_type: "RandomUniform",
        import: |cx| random_uniform(cx, false),
    },
    OpImporter {
        domain: ONNX,
        op_type: "RandomUniformLike",
        import: |cx| random_uniform(cx, true),
    },
    OpImporter {
        domain: ONNX,
        op_type: "Bernoulli",
        import: |cx| {
            let dtype = cx.get_dtype("dtype")?;
            let seed = cx.get_f("seed")?;
            cx.simple(Bernoulli { dtype, seed })
        },
    },
    OpImporter {
        domain: ONNX,
        op_type: "Multinomial",
        import: |cx| {
            let dtype = cx.get_dtype("dtype")?.unwrap_or(DType::I32);
            let sample_size = cx.i("sample_size", 1)?;
            let seed = cx.get_f("seed")?;
            cx.simple(Multinomial {
                dtype,
                sample_size,
                seed,
            })
        },
    },
    OpImporter {
        domain: ONNX,
        op_type: "NonMaxSuppression",
        import: |cx| {
            let center_point_box = cx.bool("center_point_box", false)?;
            cx.simple(NonMaxSuppression { center_point_box })
        },
    },
    OpImporter {
        domain: ONNX,
        op_type: "StringNormalizer",
        import: |cx| {
            let case_change_action =
                keyword(cx, "case_change_action", "NONE", CaseChange::from_keyword)?;
            let is_case_sensitive = cx.bool("is_case_sensitive", false)?;
            let locale = cx.s("locale", "")?;
            let stopwords = cx.get_strings("stopwords")?.unwrap_or_default();
            cx.simple(StringNormalizer {
                case_change_action,
                is_case_sensitive,
                locale,
                stopwords,
            })
        },
    },
    OpImporter {
        domain: ONNX,
        op_type: "StringConcat",
        import: |cx| cx.simple(StringConcat {}),
    },
    OpImporter {
        domain: ONNX,
        op_type: "StringSplit",
        import: |cx| {
            let delimiter = cx.s("delimiter", "")?;
            let maxsplit = cx.get_i("maxsplit")?;
            cx.simple(StringSplit {
                delimiter,
                maxsplit,
            })
        },
    },
    OpImporter {
        domain: ONNX,
        op_type: "RegexFullMatch",
        import: |cx| {
            let pattern = cx
                .get_s("pattern")?
                .ok_or_else(|| cx.err("attribute 'pattern' is required"))?;
            cx.simple(RegexFullMatch { pattern })
        },
    },
    OpImporter {
        domain: ONNX,
        op_type: "ImageDecoder",
        import: |cx| {
            let pixel_format = keyword(cx, "pixel_format", "RGB", PixelFormat::from_keyword)?;
            cx.simple(ImageDecoder { pixel_format })
        },
    },
    OpImporter {
        domain: ONNX,
        op_type: "TfIdfVectorizer",
        import: import_tfidf,
    },
    OpImporter {
        domain: ONNX,
        op_type: "NegativeLogLikelihoodLoss",
        import: |cx| {
            let reduction = keyword(cx, "reduction", "mean", Reduction::from_keyword)?;
            let ignore_index = cx.get_i("ignore_index")?;
            cx.simple(NllLoss {
                reduction,
                ignore_index,
            })
        },
    },
    OpImporter {
        domain: ONNX,
        op_type: "SoftmaxCrossEntropyLoss",
        import: |cx| {
            let reduction = keyword(cx, "reduction", "mean", Reduction::from_keyword)?;
            let ignore_index = cx.get_i("ignore_index")?;
            cx.simple(SoftmaxCrossEntropyLoss {
                reduction,
                ignore_index,
            })
        },
    },
    OpImporter {
        domain: TRAINING,
        op_type: "Adagrad",
        import: |cx| {
            let op = Adagrad {
                decay_factor: cx.f("decay_factor", 0.0)?,
                epsilon: cx.f("epsilon", 1e-6)?,
                norm_coefficient: cx.f("norm_coefficient", 0.0)?,
            };
            cx.simple(op)
        },
    },
    OpImporter {
        domain: TRAINING,
        op_type: "Adam",
        import: |cx| {
            let op = Adam {
                alpha: cx.f("alpha", 0.9)?,
                beta: cx.f("beta", 0.999)?,
                epsilon: cx.f("epsilon", 1e-6)?,
                norm_coefficient: cx.f("norm_coefficient", 0.0)?,
                norm_coefficient_post: cx.f("norm_coefficient_post", 0.0)?,
            };
            cx.simple(op)
        },
    },
    OpImporter {
        domain: TRAINING,
        op_type: "Momentum",
        import: |cx| {
            let req = |cx: &NodeCtx, name: &str| {
                cx.get_f(name)?
                    .ok_or_else(|| cx.err(format!("attribute '{name}' is required")))
            };
            let mode = cx
                .get_s("mode")?
                .ok_or_else(|| cx.err("attribute 'mode' is required"))?;
            let mode = MomentumMode::from_keyword(&mode).ok_or_else(|| {
                cx.err(format!("mode must be standard or nesterov, got '{mode}'"))
            })?;
            let op = Momentum {
                alpha: req(cx, "alpha")?,
                beta: req(cx, "beta")?,
                mode,
                norm_coefficient: req(cx, "norm_coefficient")?,
            };
            cx.simple(op)
        },
    },
    OpImporter {
        domain: ML,
        op_type: "ArrayFeatureExtractor",
        import: |cx| cx.simple(ArrayFeatureExtractor {}),
    },
    OpImporter {
        domain: ML,
        op_type: "Binarizer",
        import: |cx| {
            let threshold = cx.f("threshold", 0.0)?;
            cx.simple(Binarizer { threshold })
        },
    },
    OpImporter {
        domain: ML,
        op_type: "LabelEncoder",
        import: import_label_encoder,
    },
    OpImporter {
        domain: ML,
        op_type: "TreeEnsemble",
        import: import_tree_ensemble,
    },
    OpImporter {
        domain: ML,
        op_type: "ZipMap",
        import: |cx| {
            let classlabels_int64s = cx.ints("classlabels_int64s")?;
            let classlabels_strings = cx.get_strings("classlabels_strings")?.unwrap_or_default();
            cx.simple(ZipMap {
                classlabels_int64s,
                classlabels_strings,
            })
        },
    },
    OpImporter {
        domain: ML,
        op_type: "Normalizer",
        import: |cx| {
            let norm = keyword(cx, "norm", "MAX", NormKind::from_keyword)?;
            cx.simple(Normalizer { norm })
        },
    },
    OpImporter {
        domain: ML,
        op_type: "LinearClassifier",
        import: |cx| {
            let op = LinearClassifier {
                classlabels_ints: cx.ints("classlabels_ints")?,
                classlabels_strings: cx.get_strings("classlabels_strings")?.unwrap_or_default(),
                coefficients: cx
                    .get_floats("coefficients")?
                    .ok_or_else(|| cx.err("attribute 'coefficients' is required"))?,
                intercepts: cx.get_floats("intercepts")?.unwrap_or_default(),
                multi_class: cx.bool("multi_class", false)?,
                post_transform: keyword(cx, "post_transform", "NONE", PostTransform::from_keyword)?,
            };
            cx.simple(op)
        },
    },
    OpImporter {
        domain: ML,
        op_type: "Scaler",
        import: |cx| {
            let offset = cx.get_floats("offset")?.unwrap_or_default();
            let scale = cx.get_floats("scale")?.unwrap_or_default();
            cx.simple(Scaler { offset, scale })
        },
    },
];

/// A string attribute parsed as a keyword enum, case-insensitively.
fn keyword<E>(
    cx: &NodeCtx,
    name: &str,
    default: &str,
    parse: fn(&str) -> Option<E>,
) -> Result<E, ImportError> {
    let s = cx.s(name, default)?;
    parse(&s.to_ascii_lowercase())
        .ok_or_else(|| cx.err(format!("attribute '{name}': unknown value '{s}'")))
}

fn string_constant(dims: &[u64], values: Vec<String>) -> Constant {
    Constant {
        ty: TensorType::known(DType::String, dims),
        format: ConstFormat::Dense,
        data: ConstData::Strings(values),
    }
}

/// A scalar of `dtype` holding the integer `i` (integer and bool types) or the float `f` (float types).
fn scalar_constant(dtype: DType, i: i64, f: f64) -> Option<Constant> {
    let bytes: Vec<u8> = match dtype {
        DType::F32 => (f as f32).to_le_bytes().to_vec(),
        DType::F64 => f.to_le_bytes().to_vec(),
        DType::F16 => half::f16::from_f64(f).to_le_bytes().to_vec(),
        DType::BF16 => half::bf16::from_f64(f).to_le_bytes().to_vec(),
        DType::I64 | DType::U64 => i.to_le_bytes().to_vec(),
        DType::I32 | DType::U32 => (i as i32).to_le_bytes().to_vec(),
        DType::I16 | DType::U16 => (i as i16).to_le_bytes().to_vec(),
        DType::I8 | DType::U8 | DType::Bool => vec![i as u8],
        _ => return None,
    };
    Constant::dense(TensorType::scalar(dtype), Buffer::from_vec(bytes)).ok()
}

fn import_dropout(cx: &mut NodeCtx) -> R {
    if cx.opset() >= 12 {
        let seed = cx.get_i("seed")?;
        return cx.simple(Dropout { seed });
    }
    let data = cx.req(0)?;
    let ratio = cx.get_f("ratio")?.map(|r| cx.const_f32(&[], &[r]));
    let n = cx.num_outputs().clamp(1, 2);
    let mut outs = cx.emit(Dropout { seed: None }, vec![Some(data), ratio], n)?;
    if cx.opset() < 10 && outs.len() == 2 && cx.output_used(1) {
        // Before opset 10 the mask had the data's element type.
        let to = cx.tensor_ty(0)?.dtype;
        outs[1] = cx.emit1(
            Cast {
                to,
                ..Cast::default()
            },
            vec![Some(outs[1])],
        )?;
    }
    Ok(outs)
}

fn random_shape(cx: &NodeCtx, like: bool) -> Result<Vec<i64>, ImportError> {
    if like {
        return Ok(Vec::new());
    }
    cx.get_ints("shape")?
        .ok_or_else(|| cx.err("attribute 'shape' is required"))
}

fn random_normal(cx: &mut NodeCtx, like: bool) -> R {
    let op = RandomNormal {
        mean: cx.f("mean", 0.0)?,
        scale: cx.f("scale", 1.0)?,
        dtype: cx.get_dtype("dtype")?,
        seed: cx.get_f("seed")?,
        shape: random_shape(cx, like)?,
    };
    let inputs = if like { vec![Some(cx.req(0)?)] } else { vec![] };
    cx.emit(op, inputs, 1)
}

fn random_uniform(cx: &mut NodeCtx, like: bool) -> R {
    let op = RandomUniform {
        low: cx.f("low", 0.0)?,
        high: cx.f("high", 1.0)?,
        dtype: cx.get_dtype("dtype")?,
        seed: cx.get_f("seed")?,
        shape: random_shape(cx, like)?,
    };
    let inputs = if like { vec![Some(cx.req(0)?)] } else { vec![] };
    cx.emit(op, inputs, 1)
}

fn import_tfidf(cx: &mut NodeCtx) -> R {
    let req_i = |cx: &NodeCtx, name: &str| {
        cx.get_i(name)?
            .ok_or_else(|| cx.err(format!("attribute '{name}' is required")))
    };
    let op = TfIdfVectorizer {
        max_gram_length: req_i(cx, "max_gram_length")?,
        max_skip_count: req_i(cx, "max_skip_count")?,
        min_gram_length: req_i(cx, "min_gram_length")?,
        mode: keyword(cx, "mode", "", TfIdfMode::from_keyword)?,
        ngram_counts: cx.ints("ngram_counts")?,
        ngram_indexes: cx.ints("ngram_indexes")?,
        pool_int64s: cx.ints("pool_int64s")?,
        pool_strings: cx.get_strings("pool_strings")?.unwrap_or_default(),
        weights: cx.get_floats("weights")?.unwrap_or_default(),
    };
    cx.simple(op)
}

/// One side (`keys` or `values`) of a LabelEncoder-2+ mapping, from whichever typed attribute is set.
fn encoder_side(cx: &NodeCtx, side: &str) -> Result<Option<Constant>, ImportError> {
    if let Some(t) = cx.get_tensor(&format!("{side}_tensor"))? {
        return Ok(Some(t));
    }
    if let Some(v) = cx.get_strings(&format!("{side}_strings"))? {
        return Ok(Some(string_constant(&[v.len() as u64], v)));
    }
    if let Some(v) = cx.get_ints(&format!("{side}_int64s"))? {
        return Ok(Some(Constant::from_i64s(&[v.len() as u64], &v)));
    }
    if let Some(v) = cx.get_floats(&format!("{side}_floats"))? {
        return Ok(Some(Constant::from_f32s(&[v.len() as u64], &v)));
    }
    Ok(None)
}

/// The default output of a LabelEncoder whose values have type `dtype`.
fn encoder_default(cx: &NodeCtx, dtype: DType) -> Result<Constant, ImportError> {
    if let Some(t) = cx.get_tensor("default_tensor")? {
        return Ok(t);
    }
    let c = match dtype {
        DType::String => Some(string_constant(
            &[],
            vec![cx.s("default_string", "_Unused")?],
        )),
        d if d.is_float() => scalar_constant(d, 0, f64::from(cx.f("default_float", -0.0)?)),
        d => scalar_constant(d, cx.i("default_int64", -1)?, 0.0),
    };
    c.ok_or_else(|| cx.err(format!("values of type {dtype} are not supported")))
}

fn import_label_encoder(cx: &mut NodeCtx) -> R {
    let (keys, values, default) = if cx.opset() < 2 {
        // LabelEncoder-1: string ↔ index through `classes_strings`, direction from the input type.
        let classes = cx.get_strings("classes_strings")?.unwrap_or_default();
        let n = classes.len() as u64;
        let idx: Vec<i64> = (0..classes.len() as i64).collect();
        let names = string_constant(&[n], classes);
        let ids = Constant::from_i64s(&[n], &idx);
        if cx.tensor_ty(0)?.dtype == DType::String {
            let d = Constant::from_i64s(&[], &[cx.i("default_int64", -1)?]);
            (names, ids, d)
        } else {
            let d = string_constant(&[], vec![cx.s("default_string", "_Unused")?]);
            (ids, names, d)
        }
    } else {
        let keys = encoder_side(cx, "keys")?
            .ok_or_else(|| cx.err("one of the keys_* attributes is required"))?;
        let values = encoder_side(cx, "values")?
            .ok_or_else(|| cx.err("one of the values_* attributes is required"))?;
        let default = encoder_default(cx, values.ty.dtype)?;
        (keys, values, default)
    };
    cx.simple(LabelEncoder {
        keys: Box::new(keys),
        values: Box::new(values),
        default: Box::new(default),
    })
}

fn import_tree_ensemble(cx: &mut NodeCtx) -> R {
    let req_ints = |cx: &NodeCtx, name: &str| {
        cx.get_ints(name)?
            .ok_or_else(|| cx.err(format!("attribute '{name}' is required")))
    };
    let req_tensor = |cx: &NodeCtx, name: &str| {
        cx.get_tensor(name)?
            .ok_or_else(|| cx.err(format!("attribute '{name}' is required")))
    };
    let aggregate_function = match cx.i("aggregate_function", 1)? {
        0 => TreeAggregate::Average,
        1 => TreeAggregate::Sum,
        2 => TreeAggregate::Min,
        3 => TreeAggregate::Max,
        v => return Err(cx.err(format!("aggregate_function must be 0..=3, got {v}"))),
    };
    let post_transform = match cx.i("post_transform", 0)? {
        0 => PostTransform::None,
        1 => PostTransform::Softmax,
        2 => PostTransform::Logistic,
        3 => PostTransform::SoftmaxZero,
        4 => PostTransform::Probit,
        v => return Err(cx.err(format!("post_transform must be 0..=4, got {v}"))),
    };
    let op = TreeEnsemble {
        aggregate_function,
        post_transform,
        n_targets: cx
            .get_i("n_targets")?
            .ok_or_else(|| cx.err("attribute 'n_targets' is required"))?,
        tree_roots: req_ints(cx, "tree_roots")?,
        nodes_featureids: req_ints(cx, "nodes_featureids")?,
        nodes_modes: Box::new(req_tensor(cx, "nodes_modes")?),
        nodes_splits: Box::new(req_tensor(cx, "nodes_splits")?),
        nodes_truenodeids: req_ints(cx, "nodes_truenodeids")?,
        nodes_trueleafs: req_ints(cx, "nodes_trueleafs")?,
        nodes_falsenodeids: req_ints(cx, "nodes_falsenodeids")?,
        nodes_falseleafs: req_ints(cx, "nodes_falseleafs")?,
        nodes_hitrates: cx.get_tensor("nodes_hitrates")?.map(Box::new),
        nodes_missing_value_tracks_true: cx.ints("nodes_missing_value_tracks_true")?,
        membership_values: cx.get_tensor("membership_values")?.map(Box::new),
        leaf_targetids: req_ints(cx, "leaf_targetids")?,
        leaf_weights: Box::new(req_tensor(cx, "leaf_weights")?),
    };
    cx.simple(op)
}

#[cfg(test)]
mod tests {
    use super::super::control::tests::{graph, import, node, output_types, tensor_vi, untyped};
    use crate::proto::{AttributeProto, AttributeType};

    const F32: i32 = 1;
    const I64: i32 = 7;
    const STRING: i32 = 8;

    fn float_attr(name: &str, f: f32) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Float as i32,
            f,
            ..Default::default()
        }
    }

    fn strings_attr(name: &str, v: &[&str]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Strings as i32,
            strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn old_dropout_mask_keeps_the_data_type() {
        let g = graph(
            vec![node(
                "Dropout",
                &["x"],
                &["y", "mask"],
                vec![float_attr("ratio", 0.2)],
            )],
            vec![tensor_vi("x", F32, Some(&[3, 4]))],
            vec![untyped("y"), untyped("mask")],
        );
        let g7 = import(g.clone(), &[("", 7)]).unwrap();
        assert_eq!(output_types(&g7), ["f32[3,4]", "f32[3,4]"]);
        let g10 = import(g, &[("", 10)]).unwrap();
        assert_eq!(output_types(&g10), ["f32[3,4]", "bool[3,4]"]);
    }

    #[test]
    fn label_encoder_1_maps_strings_to_indices_and_back() {
        let classes = strings_attr("classes_strings", &["a", "b"]);
        let g = graph(
            vec![
                node("LabelEncoder", &["s"], &["i"], vec![classes.clone()]),
                node("LabelEncoder", &["i"], &["s2"], vec![classes]),
            ],
            vec![tensor_vi("s", STRING, Some(&[5]))],
            vec![untyped("i"), untyped("s2")],
        );
        let mut n = g.node.clone();
        for x in &mut n {
            x.domain = "ai.onnx.ml".into();
        }
        let g = crate::proto::GraphProto { node: n, ..g };
        let g = import(g, &[("", 13), ("ai.onnx.ml", 1)]).unwrap();
        assert_eq!(output_types(&g), ["i64[5]", "string[5]"]);
    }

    #[test]
    fn random_like_uses_the_input_shape() {
        let g = graph(
            vec![node("RandomUniformLike", &["x"], &["r"], vec![])],
            vec![tensor_vi("x", I64, Some(&[2, -1]))],
            vec![untyped("r")],
        );
        // An integer input with no dtype cannot give random floats.
        assert!(import(g.clone(), &[("", 13)]).is_err());
        let dtype = AttributeProto {
            name: "dtype".into(),
            r#type: AttributeType::Int as i32,
            i: 11,
            ..Default::default()
        };
        let mut g = g;
        g.node[0].attribute.push(dtype);
        let g = import(g, &[("", 13)]).unwrap();
        assert_eq!(output_types(&g), ["f64[2,?]"]);
    }
}
