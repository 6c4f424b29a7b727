//! Runs the ahead-of-time compiled `tiny_cnn` (linked from the object `build.rs` produced) on the
//! bundled example image and prints the class probabilities.

mod tiny_cnn {
    include!(concat!(env!("OUT_DIR"), "/tiny_cnn.rs"));
}

/// The f32 data of a little-endian `.npy` file (version 1 or 2 header).
fn npy_f32(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 12 {
        return None;
    }
    let (len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let data = bytes.get(start + len..)?;
    Some(
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let image = npy_f32(include_bytes!("../../models/tiny_cnn_input.npy"))
        .ok_or("the bundled input is not a .npy file")?;
    let mut model = tiny_cnn::Model::new();
    let input = model.input_image();
    if input.len() != image.len() {
        return Err(format!(
            "input has {} values, the model takes {}",
            image.len(),
            input.len()
        )
        .into());
    }
    input.copy_from_slice(&image);
    model.run()?;
    println!("target: {}", env!("TINY_CNN_TARGET"));
    println!("input image {:?}", tiny_cnn::INPUT_IMAGE_SHAPE);
    for (class, p) in model.output_probs().iter().enumerate() {
        println!("class {class}: {p:.6}");
    }
    let manifest = tiny_cnn::manifest();
    let hash = manifest
        .lines()
        .find_map(|l| l.strip_prefix("model_hash="))
        .unwrap_or("?");
    println!("model hash (from the linked object's manifest): {hash}");
    Ok(())
}
