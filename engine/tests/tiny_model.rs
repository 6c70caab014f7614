//! The small model the documentation's examples embed (`tests/data/tiny.tvae`, shipped in the
//! package): a synthetic 8 x 8 VAE, hidden layer of 16, latent 4, from the format crate's
//! generator. This test holds the committed file to the generator, so that it never goes
//! stale when the format changes; `TINYVAE_BLESS=1 cargo test -p tinyvae-engine --test
//! tiny_model` writes it again.
use tinyvae_format::owned::OwnedModel;
use tinyvae_format::testkit::synthetic::SyntheticSpec;

#[test]
fn committed_tiny_model_is_the_generators() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tiny.tvae");
    let want = OwnedModel::synthetic(&SyntheticSpec::default(), 1)
        .to_bytes()
        .unwrap();
    if std::env::var_os("TINYVAE_BLESS").is_some() {
        std::fs::write(path, &want).unwrap();
    }
    let have = std::fs::read(path).unwrap();
    assert!(
        have == want,
        "{path} is not what the generator makes now; TINYVAE_BLESS=1 writes it again"
    );
    // The engine runs it on any target, aligned or not.
    let m = tinyvae_format::Model::from_bytes(&have).unwrap();
    tinyvae_engine::Engine::new_unaligned(&m);
}
