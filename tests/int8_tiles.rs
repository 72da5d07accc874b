//! The int8 engine gives the same embedding bits on every int8 tile path (AMX, AVX-512 VNNI,
//! AVX2), each forced on the `vocmine` binary with `VOCMINE_KERNELS`.

mod common;

use vocmine::encode::kernels::amx_ready;
use vocmine::encode::kernels::available;
use vocmine::encode::kernels::has_avx512;

#[test]
fn int8_embeddings_are_the_same_bits_on_amx_vnni_and_avx2() {
    if !available() {
        eprintln!("SKIP: no AVX2 + FMA on this CPU (no int8 engine)");
        return;
    }
    let Some(inputs) = common::shared("bench/results/e5_first200_inputs.jsonl") else {
        return;
    };
    let mut paths = vec!["avx2"];
    if has_avx512() {
        paths.push("vnni");
    } else {
        eprintln!("SKIP (vnni): no AVX-512 VNNI on this CPU");
    }
    match amx_ready() {
        Ok(()) => paths.push("amx"),
        Err(why) => eprintln!("SKIP (amx): {why}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let model = common::model_dir().join("multilingual-e5-small-zh-en");
    let mut dumps = Vec::new();
    for path in &paths {
        let dump = dir.path().join(format!("{path}.f32"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vocmine"));
        cmd.env("VOCMINE_KERNELS", path)
            .env_remove("VOCMINE_NO_AVX512")
            .env("VOCMINE_CACHE", dir.path().join("cache"));
        common::run_checked(
            cmd,
            &[
                "bench",
                inputs.to_str().unwrap(),
                "--engine",
                "int8",
                "--threads",
                "1",
                "--model",
                model.to_str().unwrap(),
                "--dump",
                dump.to_str().unwrap(),
            ],
        );
        let bytes = std::fs::read(&dump).unwrap();
        // 200 texts x 384 dimensions x 4 bytes, unit vectors
        assert_eq!(bytes.len(), 200 * 384 * 4, "{path}");
        let first: Vec<f32> = bytes[..384 * 4]
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let norm = first.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{path}: norm {norm}");
        dumps.push(bytes);
    }
    for (path, d) in paths.iter().zip(&dumps).skip(1) {
        let diff = d
            .chunks(4)
            .zip(dumps[0].chunks(4))
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(diff, 0, "{path} vs {}: {diff} values differ", paths[0]);
    }
}
