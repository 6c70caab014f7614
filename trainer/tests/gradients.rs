//! Every fused op against candle's own unfused graph: outputs and the gradients of every
//! input, on several shapes each (the reference convolution shapes, odd sizes, strides that
//! leave remainders, channels of 1 and 3). The same check is stamped onto every op. Where
//! candle's own graph cannot serve (its conv2d backward takes one output padding for both
//! axes), finite differences do.

use candle_core::{Device, Tensor, Var, D};
use tinyvae_trainer::ops::conv::{conv2d, conv_transpose2d, ConvGeometry};
use tinyvae_trainer::ops::{bce, linear, relu};
use tinyvae_trainer::rng::Rng;

/// Largest difference allowed between a fused op and the reference graph, relative to the
/// largest magnitude of the reference: both sum in f32, in different orders.
const RELATIVE_TOLERANCE: f32 = 2e-5;

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut v = vec![0f32; shape.iter().product()];
    Rng::new(seed).fill_normal(&mut v);
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    let (g, w) = (values(got), values(want));
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let worst = g
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= RELATIVE_TOLERANCE * scale,
        "{what}: off by {worst} at scale {scale}"
    );
}

/// Runs `fused` and `reference` on the same fresh variables, takes the gradient of
/// `sum(y * r)` for a random `r`, and compares the outputs and every input's gradient.
fn check(
    name: &str,
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Tensor,
    reference: impl Fn(&[Tensor]) -> Tensor,
) {
    let run = |f: &dyn Fn(&[Tensor]) -> Tensor| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = f(&ts);
        let r = random(y.dims(), 99);
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<Tensor> = ts
            .iter()
            .map(|t| grads.get(t).expect("a gradient for every input").clone())
            .collect();
        (y, g)
    };
    let (y, g) = run(&fused);
    let (ry, rg) = run(&reference);
    assert_close(&format!("{name}: output"), &y, &ry);
    for (i, (a, b)) in g.iter().zip(&rg).enumerate() {
        assert_close(&format!("{name}: gradient of input {i}"), a, b);
    }
}

/// NHWC to NCHW and back, and `(out, k, k, in)` weights to candle's `(out, in, k, k)`.
fn nchw(t: &Tensor) -> Tensor {
    t.permute((0, 3, 1, 2)).unwrap()
}
fn nhwc(t: &Tensor) -> Tensor {
    t.permute((0, 2, 3, 1)).unwrap()
}

fn geometries() -> Vec<(usize, ConvGeometry)> {
    let g = |in_h, in_w, in_c, out_c, kernel, stride, padding| ConvGeometry {
        in_h,
        in_w,
        in_c,
        out_c,
        kernel,
        stride,
        padding,
    };
    vec![
        // The reference conv VAE's two layers (batch 3).
        (3, g(28, 28, 1, 32, 4, 2, 1)),
        (2, g(14, 14, 32, 64, 4, 2, 1)),
        // Odd sizes, RGB, a stride that leaves a remainder, padding 0 and 2, stride 1 and 3.
        (2, g(13, 9, 3, 5, 3, 2, 1)),
        (2, g(10, 13, 2, 4, 3, 3, 0)),
        (1, g(7, 6, 4, 3, 5, 1, 2)),
        (2, g(5, 9, 1, 2, 2, 2, 0)),
    ]
}

#[test]
fn conv2d_matches_candle() {
    for (n, g) in geometries() {
        let x = random(&[n, g.in_h, g.in_w, g.in_c], 1);
        let w = random(&[g.out_c, g.kernel, g.kernel, g.in_c], 2);
        let b = random(&[g.out_c], 3);
        check(
            &format!("conv2d {g:?}"),
            &[x, w, b],
            |t| conv2d(&t[0], &t[1], &t[2], g).unwrap(),
            |t| {
                let y = nchw(&t[0])
                    .conv2d(&nchw(&t[1]), g.padding, g.stride, 1, 1)
                    .unwrap();
                let y = y
                    .broadcast_add(&t[2].reshape((1, g.out_c, 1, 1)).unwrap())
                    .unwrap();
                nhwc(&y)
            },
        );
    }
}

#[test]
fn conv_transpose2d_matches_candle() {
    for (n, g) in geometries() {
        let x = random(&[n, g.out_h(), g.out_w(), g.out_c], 4);
        let w = random(&[g.out_c, g.kernel, g.kernel, g.in_c], 5);
        let b = random(&[g.in_c], 6);
        // The rows and columns the strides leave over, as PyTorch's output_padding.
        let extra = (g.in_h + 2 * g.padding - g.kernel) % g.stride;
        assert_eq!(
            extra,
            (g.in_w + 2 * g.padding - g.kernel) % g.stride,
            "square remainder only"
        );
        check(
            &format!("conv_transpose2d {g:?}"),
            &[x, w, b],
            |t| conv_transpose2d(&t[0], &t[1], &t[2], g).unwrap(),
            |t| {
                let y = nchw(&t[0])
                    .conv_transpose2d(&nchw(&t[1]), g.padding, extra, g.stride, 1)
                    .unwrap();
                let y = y
                    .broadcast_add(&t[2].reshape((1, g.in_c, 1, 1)).unwrap())
                    .unwrap();
                nhwc(&y)
            },
        );
    }
}

#[test]
fn linear_matches_candle() {
    for (n, inp, out) in [
        (128, 784, 400),
        (5, 3136, 40),
        (3, 20, 3136),
        (1, 1, 1),
        (33, 7, 65),
    ] {
        check(
            &format!("linear {n}x{inp} -> {out}"),
            &[
                random(&[n, inp], 7),
                random(&[out, inp], 8),
                random(&[out], 9),
            ],
            |t| linear::linear(&t[0], &t[1], &t[2]).unwrap(),
            |t| {
                t[0].matmul(&t[1].t().unwrap())
                    .unwrap()
                    .broadcast_add(&t[2])
                    .unwrap()
            },
        );
    }
}

#[test]
fn relu_matches_candle() {
    check(
        "relu",
        &[random(&[7, 300], 10)],
        |t| relu::relu(&t[0]).unwrap(),
        |t| t[0].relu().unwrap(),
    );
}

#[test]
fn bce_with_logits_matches_candle() {
    // Logits over a wide range, targets in [0, 1] (continuous pixels, as MNIST's).
    let l = (random(&[6, 784], 11) * 6.0).unwrap();
    let x = candle_nn::ops::sigmoid(&random(&[6, 784], 12)).unwrap();
    check(
        "bce",
        &[l],
        |t| bce::bce_with_logits(&t[0], &x).unwrap(),
        |t| {
            // max(l, 0) - l x + log(1 + exp(-|l|)), in candle's own ops.
            let l = &t[0];
            let soft = (l.abs().unwrap().neg().unwrap().exp().unwrap() + 1.0)
                .unwrap()
                .log()
                .unwrap();
            ((l.relu().unwrap() - (l * &x).unwrap()).unwrap() + soft)
                .unwrap()
                .sum(D::Minus1)
                .unwrap()
        },
    );
}

#[test]
fn adam_matches_candle_nn() {
    use candle_nn::Optimizer;
    use tinyvae_trainer::train::Adam;
    let target = random(&[50, 30], 13);
    let loss = |w: &Var| {
        (w.as_tensor() - &target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    };
    let ours = Var::from_tensor(&random(&[50, 30], 14)).unwrap();
    let theirs = Var::from_tensor(&random(&[50, 30], 14)).unwrap();
    let mut adam = Adam::new(vec![("w".into(), ours.clone())], 1e-2).unwrap();
    let params = candle_nn::ParamsAdamW {
        lr: 1e-2,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut reference = candle_nn::AdamW::new(vec![theirs.clone()], params).unwrap();
    for _ in 0..25 {
        adam.backward_step(&loss(&ours)).unwrap();
        reference.backward_step(&loss(&theirs)).unwrap();
    }
    assert_close("adam after 25 steps", ours.as_tensor(), theirs.as_tensor());
}

/// Central differences of `sum(y * r)`, which is linear in each input of a convolution: the
/// difference quotient is exact but for f32 rounding.
const FINITE_DIFFERENCE_TOLERANCE: f32 = 2e-3;

#[test]
fn convolutions_match_finite_differences_where_the_axes_differ() {
    // Height leaves 1 row over the strides, width 2 columns: candle's backward cannot do it.
    let g = ConvGeometry {
        in_h: 10,
        in_w: 11,
        in_c: 2,
        out_c: 3,
        kernel: 3,
        stride: 3,
        padding: 0,
    };
    type Op = fn(&Tensor, &Tensor, &Tensor, ConvGeometry) -> candle_core::Result<Tensor>;
    let ops: [(&str, Op, [Vec<usize>; 3]); 2] = [
        (
            "conv2d",
            conv2d,
            [vec![2, 10, 11, 2], vec![3, 3, 3, 2], vec![3]],
        ),
        (
            "conv_transpose2d",
            conv_transpose2d,
            [vec![2, g.out_h(), g.out_w(), 3], vec![3, 3, 3, 2], vec![2]],
        ),
    ];
    for (name, op, shapes) in ops {
        let inputs: Vec<Tensor> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| random(s, 20 + i as u64))
            .collect();
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let y = op(
            vars[0].as_tensor(),
            vars[1].as_tensor(),
            vars[2].as_tensor(),
            g,
        )
        .unwrap();
        let r = random(y.dims(), 30);
        let loss = |t: &[Tensor]| -> f32 {
            let y = op(&t[0], &t[1], &t[2], g).unwrap();
            (&y * &r).unwrap().sum_all().unwrap().to_scalar().unwrap()
        };
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, v) in vars.iter().enumerate() {
            let grad = values(grads.get(v.as_tensor()).unwrap());
            let scale = grad.iter().fold(0f32, |m, v| m.max(v.abs()));
            let len = grad.len();
            for k in (0..len).step_by((len / 12).max(1)) {
                let bumped = |h: f32| {
                    let mut ts = inputs.clone();
                    let mut v = values(&ts[i]);
                    v[k] += h;
                    ts[i] = Tensor::from_vec(v, ts[i].dims(), &Device::Cpu).unwrap();
                    loss(&ts)
                };
                let fd = (bumped(0.5) - bumped(-0.5)) / 1.0;
                assert!(
                    (fd - grad[k]).abs() <= FINITE_DIFFERENCE_TOLERANCE * scale,
                    "{name}: input {i} value {k}: gradient {} but finite difference {fd}",
                    grad[k]
                );
            }
        }
    }
}
