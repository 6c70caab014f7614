//! Writes the fuzz target's seed corpus: small valid models of every kind, as whole blobs
//! (mode byte 1) and as bare payloads (mode byte 0).
//! usage: cargo run -p tinyvae-format --example fuzz_seed -- model-format/fuzz/corpus/from_bytes
use tinyvae_format::owned::{OwnedModel, SyntheticSpec};
use tinyvae_format::{ModelKind, HEADER_LEN};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: fuzz_seed DIR");
    std::fs::create_dir_all(&dir).expect("create corpus folder");
    let specs = [
        (ModelKind::Vae, vec![6], 2, true, 2),
        (ModelKind::Autoencoder, vec![], 3, false, 0),
        (ModelKind::DenoisingAutoencoder, vec![5, 4], 2, true, 0),
        (ModelKind::Vae, vec![3, 3, 3], 1, false, 1),
    ];
    for (i, (kind, hidden, latent, golden, mixture)) in specs.into_iter().enumerate() {
        let spec = SyntheticSpec {
            kind,
            width: 3,
            height: 2,
            hidden,
            latent,
            golden,
            mixture,
        };
        let blob = OwnedModel::synthetic(&spec, i as u64)
            .to_bytes()
            .expect("valid");
        let mut whole = vec![1u8];
        whole.extend_from_slice(&blob);
        std::fs::write(format!("{dir}/blob-{i}"), whole).expect("write");
        let mut payload = vec![0u8];
        payload.extend_from_slice(&blob[HEADER_LEN..]);
        std::fs::write(format!("{dir}/payload-{i}"), payload).expect("write");
    }
}
