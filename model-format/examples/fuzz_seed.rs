//! Writes the fuzz target's seed corpus: small valid models of every kind, dense and
//! convolutional, with and without an encoder, as whole blobs (mode byte odd) and as bare
//! payloads (mode byte even, bits 1-2 the format version to frame them with, 0 for the newest).
//! usage: cargo run -p tinyvae-format --example fuzz_seed -- fuzz/corpus/from_bytes
use tinyvae_format::owned::OwnedModel;
use tinyvae_format::testkit::synthetic::{SyntheticConv, SyntheticSpec};
use tinyvae_format::{ModelKind, WeightLayout, FORMAT_VERSION, HEADER_LEN};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: fuzz_seed DIR");
    std::fs::create_dir_all(&dir).expect("create corpus folder");
    let dense = |kind, hidden: Vec<u16>, latent, golden, mixture| SyntheticSpec {
        kind,
        width: 3,
        height: 2,
        hidden,
        latent,
        golden,
        mixture,
        ..Default::default()
    };
    let stage = |channels, kernel, stride, padding| SyntheticConv {
        channels,
        kernel,
        stride,
        padding,
    };
    let conv = SyntheticSpec {
        width: 5,
        height: 4,
        channels: 2,
        conv: vec![stage(2, 3, 2, 1), stage(3, 2, 1, 0)],
        hidden: vec![],
        latent: 2,
        golden: true,
        mixture: 1,
        ..Default::default()
    };
    let specs = [
        (
            dense(ModelKind::Vae, vec![6], 2, true, 2),
            WeightLayout::RowMajor,
        ),
        (
            dense(ModelKind::Autoencoder, vec![], 3, false, 0),
            WeightLayout::RowMajor,
        ),
        (
            dense(ModelKind::DenoisingAutoencoder, vec![5, 4], 2, true, 0),
            WeightLayout::Tiles4x4,
        ),
        (
            dense(ModelKind::Vae, vec![3, 3, 3], 1, false, 1),
            WeightLayout::RowMajor,
        ),
        (conv.clone(), WeightLayout::RowMajor),
        (
            SyntheticSpec {
                decoder_only: true,
                ..conv
            },
            WeightLayout::Tiles4x4,
        ),
    ];
    let n = specs.len() as u64;
    let mut models: Vec<OwnedModel> = specs
        .into_iter()
        .enumerate()
        .map(|(i, (spec, layout))| OwnedModel::synthetic(&spec, i as u64).with_layout(layout))
        .collect();
    // A second-stage prior (version 6), tiled: its layers aligned as the networks' are.
    models.push(
        OwnedModel::synthetic(&dense(ModelKind::Vae, vec![4], 2, true, 0), n)
            .with_second_stage(3, &[5], n)
            .with_layout(WeightLayout::Tiles4x4),
    );
    for (i, m) in models.iter().enumerate() {
        let blob = m.to_bytes().expect("valid");
        let mut whole = vec![1u8];
        whole.extend_from_slice(&blob);
        std::fs::write(format!("{dir}/blob-{i}"), whole).expect("write");
        // The fuzz target frames a payload with the newest version for bits 1-2 = 0, else
        // with versions 1 to 3.
        let version = u16::from_le_bytes([blob[4], blob[5]]);
        let tag = if version == FORMAT_VERSION {
            0
        } else {
            blob[4] & 3
        };
        let mut payload = vec![tag << 1];
        payload.extend_from_slice(&blob[HEADER_LEN..]);
        std::fs::write(format!("{dir}/payload-{i}"), payload).expect("write");
    }
}
