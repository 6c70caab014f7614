//! A second-stage prior (format version 6): drawn through its network where the engine has
//! the `second-stage` feature, the same draws from the same seed, the stream left where the
//! draws end; refused by name where the format crate reads such a prior and the engine was
//! built without the feature.

use tinyvae_engine::{Engine, Error, Sampler};
use tinyvae_format::owned::OwnedModel;
use tinyvae_format::testkit::synthetic::SyntheticSpec;
use tinyvae_format::{Model, WeightLayout};

fn blob(layout: WeightLayout) -> Vec<u8> {
    OwnedModel::synthetic(&SyntheticSpec::default(), 7)
        .with_second_stage(6, &[10, 7], 8)
        .with_layout(layout)
        .to_bytes()
        .unwrap()
}

#[test]
fn a_second_stage_is_drawn_or_refused_by_name() {
    for layout in [WeightLayout::RowMajor, WeightLayout::Tiles4x4] {
        let blob = blob(layout);
        let m = Model::from_bytes(&blob).unwrap();
        let e = Engine::new_unaligned(&m);
        let dim = usize::from(m.latent.dim);
        let draw = |s: &mut Sampler| {
            let mut code = vec![0i8; dim];
            e.sample_prior(s, &mut code).map(|()| code)
        };
        let mut s = Sampler::new(3);
        let first = draw(&mut s);
        if !cfg!(feature = "second-stage") {
            assert_eq!(first, Err(Error::SecondStageNotBuilt));
            continue;
        }
        let first = first.unwrap();
        // Six N(0, 1) draws a sample: the stream goes on from there.
        let mut t = Sampler::new(3);
        for _ in 0..6 {
            t.normal();
        }
        assert_eq!(s.state(), t.state(), "{layout:?}");
        assert_eq!(draw(&mut Sampler::new(3)).unwrap(), first);
        // Different draws give different codes (the network is not constant).
        let codes: Vec<Vec<i8>> = (0..8).map(|_| draw(&mut s).unwrap()).collect();
        assert!(codes.iter().any(|c| *c != first), "{layout:?}: {codes:?}");
    }
}
