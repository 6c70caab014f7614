//! Drawing a chosen class: errors where the prior has no such class, and draws of each class
//! that come from that class's components only, in proportion to their weights.

use tinyvae_engine::{Engine, Error, Sampler};
use tinyvae_format::owned::OwnedModel;
use tinyvae_format::testkit::synthetic::SyntheticSpec;
use tinyvae_format::{Model, Prior};

fn model(mixture: u16, classes: u16) -> Vec<u8> {
    let spec = SyntheticSpec {
        mixture,
        ..Default::default()
    };
    OwnedModel::synthetic(&spec, 4)
        .with_classes(classes, 9)
        .to_bytes()
        .unwrap()
}

#[test]
fn a_class_the_prior_does_not_have_is_an_error() {
    for (blob, classes) in [(model(0, 0), 0), (model(3, 0), 0), (model(6, 3), 3)] {
        let m = Model::from_bytes(&blob).unwrap();
        let e = Engine::new(&m).unwrap();
        assert_eq!(e.classes(), classes);
        let mut code = vec![0i8; usize::from(m.latent.dim)];
        let err = e
            .sample_class(&mut Sampler::new(1), classes, &mut code)
            .unwrap_err();
        assert_eq!(
            err,
            Error::NoSuchClass {
                class: classes as u32,
                classes: classes as u32
            }
        );
        let text = err.to_string();
        assert!(text.contains(&format!("class {classes}")), "{text}");
        // The code's length is checked before the class.
        assert!(matches!(
            e.sample_class(&mut Sampler::new(1), 0, &mut code[1..]),
            Err(Error::OutputLength { .. })
        ));
    }
}

/// With every sigma tiny, a draw is its component's mean: each class's draws land on its own
/// components' means only, each about as often as its weight within the class says.
#[test]
fn each_class_draws_from_its_own_components_by_weight() {
    let mut owned = OwnedModel::synthetic(
        &SyntheticSpec {
            mixture: 7,
            ..Default::default()
        },
        4,
    )
    .with_classes(3, 9);
    if let tinyvae_format::owned::OwnedPrior::ClassMixture { sigmas, means, .. } = &mut owned.prior
    {
        sigmas.iter_mut().for_each(|s| *s = 1);
        // Means far apart, on the code's grid: component k at k steps in every dimension.
        let dim = usize::from(owned.latent.dim);
        for (i, m) in means.iter_mut().enumerate() {
            *m = ((i / dim) as i16 - 3) * 256;
        }
    }
    let blob = owned.to_bytes().unwrap();
    let m = Model::from_bytes(&blob).unwrap();
    let Prior::ClassMixture(cm) = &m.prior else {
        panic!("not a class mixture")
    };
    let e = Engine::new(&m).unwrap();
    let dim = usize::from(m.latent.dim);
    // The code each component's mean maps to.
    let mean_code = |k: usize| {
        let stats: Vec<i16> = (0..2 * dim)
            .map(|i| {
                if i < dim {
                    cm.mixture.means.get(k * dim + i).unwrap()
                } else {
                    0
                }
            })
            .collect();
        let mut code = vec![0i8; dim];
        e.mean_code(&stats, &mut code).unwrap();
        code
    };
    let codes: Vec<Vec<i8>> = (0..7).map(mean_code).collect();
    let cum: Vec<f64> = cm.mixture.cumulative.iter().map(f64::from).collect();
    let mut sampler = Sampler::new(3);
    let mut code = vec![0i8; dim];
    const DRAWS: usize = 20_000;
    for c in 0..3 {
        let range = cm.class_range(c).unwrap();
        let mut hits = [0usize; 7];
        for _ in 0..DRAWS {
            e.sample_class(&mut sampler, c, &mut code).unwrap();
            let k = codes
                .iter()
                .position(|x| *x == code)
                .expect("a component's mean");
            hits[k] += 1;
        }
        let lo = if range.start == 0 {
            0.0
        } else {
            cum[range.start - 1]
        };
        let hi = if range.end == 7 {
            4_294_967_296.0
        } else {
            cum[range.end - 1]
        };
        for (k, &h) in hits.iter().enumerate() {
            if !range.contains(&k) {
                assert_eq!(h, 0, "class {c} drew component {k}, outside {range:?}");
                continue;
            }
            let below = if k == 0 { 0.0 } else { cum[k - 1] };
            let top = if k == 6 { 4_294_967_296.0 } else { cum[k] };
            let want = (top - below) / (hi - lo);
            let got = h as f64 / DRAWS as f64;
            // Five standard errors of a share of 20,000 draws.
            let tol = 5.0 * (want * (1.0 - want) / DRAWS as f64).sqrt() + 1e-9;
            assert!(
                (got - want).abs() < tol,
                "class {c} component {k}: {got} against {want}"
            );
        }
    }
}
