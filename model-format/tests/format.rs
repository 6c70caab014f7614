//! Round trip, robustness and size of the model container.

use proptest::prelude::*;
use tinyvae_format::owned::{quantize_multiplier, OwnedModel, OwnedPrior};
use tinyvae_format::testkit::synthetic::{SyntheticConv, SyntheticSpec};
use tinyvae_format::{
    Error, I8s, Model, ModelKind, NetworkId, Prior, WeightLayout, FORMAT_VERSION, HEADER_LEN,
};

fn spec(kind: ModelKind, hidden: Vec<u16>, latent: u16) -> SyntheticSpec {
    SyntheticSpec {
        kind,
        hidden,
        latent,
        golden: true,
        mixture: 3,
        ..Default::default()
    }
}

/// A small conv VAE: 9 x 7 RGB, conv 4 (k3 s2 p1) and 5 (k2 s1 p0), a dense layer of 6.
fn conv_spec() -> SyntheticSpec {
    SyntheticSpec {
        width: 9,
        height: 7,
        channels: 3,
        conv: vec![
            SyntheticConv {
                channels: 4,
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            SyntheticConv {
                channels: 5,
                kernel: 2,
                stride: 1,
                padding: 0,
            },
        ],
        hidden: vec![6],
        latent: 3,
        golden: true,
        mixture: 2,
        ..Default::default()
    }
}

fn conv_blob() -> Vec<u8> {
    OwnedModel::synthetic(&conv_spec(), 5)
        .to_bytes()
        .expect("valid model")
}

fn decoder_only_blob() -> Vec<u8> {
    let s = SyntheticSpec {
        decoder_only: true,
        ..conv_spec()
    };
    OwnedModel::synthetic(&s, 6)
        .with_layout(WeightLayout::Tiles4x4)
        .to_bytes()
        .expect("valid model")
}

fn small_blob() -> Vec<u8> {
    OwnedModel::synthetic(&spec(ModelKind::Vae, vec![24, 12], 4), 7)
        .to_bytes()
        .expect("valid model")
}

/// The same model with every layer in 4 x 4 tiles; shapes that are not multiples of 4.
fn small_tiled_blob() -> Vec<u8> {
    OwnedModel::synthetic(&spec(ModelKind::Vae, vec![23, 10], 5), 7)
        .with_layout(WeightLayout::Tiles4x4)
        .to_bytes()
        .expect("valid model")
}

fn kind() -> impl Strategy<Value = ModelKind> {
    prop_oneof![
        Just(ModelKind::Autoencoder),
        Just(ModelKind::DenoisingAutoencoder),
        Just(ModelKind::Vae)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every field written reads back identically, over random shapes and values.
    #[test]
    fn round_trip(
        kind in kind(),
        w in 1u16..12, h in 1u16..12,
        hidden in proptest::collection::vec(1u16..40, 0..4),
        latent in 1u16..10,
        golden: bool,
        mixture in 0u16..4,
        seed: u64,
    ) {
        let s = SyntheticSpec { kind, width: w, height: h, hidden, latent, golden, mixture, ..Default::default() };
        let owned = OwnedModel::synthetic(&s, seed);
        let buf = owned.buffers();
        let view = owned.view(&buf).unwrap();
        let blob = view.to_bytes().unwrap();
        let back = Model::from_bytes(&blob).unwrap();
        prop_assert_eq!(&back, &view);
        // Serialization is deterministic: the same model gives the same bytes.
        prop_assert_eq!(&back.to_bytes().unwrap(), &blob);
        prop_assert_eq!(u16::from(blob[4]), FORMAT_VERSION, "every model is written as the newest version");

        // The same model in 4 x 4 tiles: every weight reads back in place, tiles are aligned.
        let tiled = owned.with_layout(WeightLayout::Tiles4x4);
        let tblob = tiled.to_bytes().unwrap();
        prop_assert_eq!(u16::from(tblob[4]), FORMAT_VERSION, "every model is written as the newest version");
        let t = Model::from_bytes(&tblob).unwrap();
        for (a, b) in t.encoder.layers.iter().chain(&t.decoder.layers)
            .zip(view.encoder.layers.iter().chain(&view.decoder.layers))
        {
            let (a, b) = (a.matrix(), b.matrix());
            prop_assert_eq!(a.layout, WeightLayout::Tiles4x4);
            prop_assert_eq!((a.packed_weights().as_ptr() as usize - tblob.as_ptr() as usize) % 4, 0);
            for o in 0..usize::from(a.out_dim) {
                for i in 0..usize::from(a.in_dim) {
                    prop_assert_eq!(a.weight(o, i), b.weight(o, i), "weight ({}, {})", o, i);
                }
            }
            prop_assert_eq!(a.bias, b.bias);
        }
        prop_assert_eq!(tiled.encoder[0].channels(), owned.encoder[0].channels());
    }

    /// Conv models (format version 3 and later) round-trip in both layouts, with and without an
    /// encoder, over random shapes, channels and geometries.
    #[test]
    fn conv_round_trip(
        kind in kind(),
        w in 2u16..14, h in 2u16..14, c in 1u8..4,
        stages in proptest::collection::vec((1u16..6, 1u8..5, 1u8..4, 0u8..3), 1..3),
        hidden in proptest::collection::vec(1u16..12, 0..2),
        latent in 1u16..6,
        decoder_only: bool,
        seed: u64,
    ) {
        let conv = stages.iter().map(|&(channels, kernel, stride, padding)| SyntheticConv {
            channels, kernel, stride, padding: padding.min(kernel - 1),
        }).collect();
        let s = SyntheticSpec {
            kind, width: w, height: h, channels: c, conv, hidden, latent, golden: true,
            mixture: 1, decoder_only,
        };
        let owned = OwnedModel::synthetic(&s, seed);
        let convs = s.conv_shapes().len();
        for layout in [WeightLayout::RowMajor, WeightLayout::Tiles4x4] {
            let o = owned.with_layout(layout);
            let blob = o.to_bytes().unwrap();
            let back = Model::from_bytes(&blob).unwrap();
            prop_assert_eq!(u16::from_le_bytes([blob[4], blob[5]]), FORMAT_VERSION);
            prop_assert_eq!(back.has_encoder(), !decoder_only);
            prop_assert_eq!(back.decoder.layers.iter().filter(|l| l.conv().is_some()).count(), convs);
            let buf = o.buffers();
            let view = o.view(&buf).unwrap();
            for (a, b) in back.decoder.layers.iter().zip(&view.decoder.layers) {
                prop_assert_eq!(a.conv(), b.conv());
                let (a, b) = (a.matrix(), b.matrix());
                for r in 0..usize::from(a.out_dim) {
                    for j in 0..usize::from(a.in_dim) {
                        prop_assert_eq!(a.weight(r, j), b.weight(r, j));
                    }
                }
            }
            prop_assert_eq!(&back.to_bytes().unwrap(), &blob);
            // Every layer's logical matrix reads the same whatever the storage order.
            for (a, b) in o.encoder.iter().chain(&o.decoder).zip(owned.encoder.iter().chain(&owned.decoder)) {
                prop_assert_eq!(a.channels(), b.channels());
            }
        }
    }

    /// Arbitrary bytes after a valid header never panic.
    #[test]
    fn random_payloads_are_rejected(payload in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(Model::from_bytes(&frame(&payload)).is_err());
    }

    #[test]
    fn quantized_multipliers_are_accurate(real in 1e-9f64..1e4) {
        let (m, s) = quantize_multiplier(real).unwrap();
        prop_assert!(m >= 1 << 30);
        let back = f64::from(m) / 2f64.powi(31) * 2f64.powi(i32::from(s));
        prop_assert!((back - real).abs() <= real * 1e-9);
    }
}

#[test]
fn every_truncation_is_an_error() {
    for blob in [
        small_blob(),
        small_tiled_blob(),
        conv_blob(),
        decoder_only_blob(),
    ] {
        for n in 0..blob.len() {
            assert!(
                Model::from_bytes(&blob[..n]).is_err(),
                "prefix of {n} bytes parsed"
            );
        }
        assert!(Model::from_bytes(&blob).is_ok());
    }
}

/// Every flip is an error, but one: the version field's second bit, which turns version 6
/// into version 4, the same encoding and checksum (FORMAT.md, section 5). That flip must read
/// exactly the same model, so it changes nothing; and for a model that needs version 5 or 6
/// (a prior grouped by class, a second stage) it is an error too.
#[test]
fn every_single_bit_flip_is_an_error() {
    let classes = OwnedModel::synthetic(&spec(ModelKind::Vae, vec![12], 4), 2)
        .with_classes(2, 5)
        .to_bytes()
        .unwrap();
    let second = OwnedModel::synthetic(&spec(ModelKind::Vae, vec![12], 4), 3)
        .with_second_stage(4, &[8], 6)
        .with_layout(WeightLayout::Tiles4x4)
        .to_bytes()
        .unwrap();
    for blob in [
        small_blob(),
        small_tiled_blob(),
        conv_blob(),
        decoder_only_blob(),
        classes,
        second,
    ] {
        flips_are_errors(&blob);
    }
}

fn flips_are_errors(blob: &[u8]) {
    assert_eq!(
        FORMAT_VERSION, 6,
        "the version-4 exception below is version 6's"
    );
    let original = Model::from_bytes(blob).unwrap();
    let mut b = blob.to_vec();
    for i in 0..b.len() {
        for bit in 0..8 {
            b[i] ^= 1 << bit;
            match Model::from_bytes(&b) {
                Err(_) => {}
                Ok(m) if (i, bit) == (4, 1) && original.min_version() < 5 => {
                    assert_eq!(m, original, "relabelled as version 4, another model");
                }
                Ok(_) => panic!("flip of byte {i} bit {bit} parsed"),
            }
            b[i] ^= 1 << bit;
        }
    }
}

#[test]
fn header_errors_name_what_is_wrong() {
    let blob = small_blob();
    assert_eq!(
        Model::from_bytes(&blob[..3]),
        Err(Error::Truncated {
            needed: 16,
            available: 3
        })
    );
    let mut b = blob.clone();
    b[0] = b'X';
    assert_eq!(Model::from_bytes(&b), Err(Error::BadMagic));
    let mut b = blob.clone();
    b[4] = 9;
    assert_eq!(
        Model::from_bytes(&b),
        Err(Error::UnsupportedVersion {
            found: 9,
            supported: FORMAT_VERSION
        })
    );
    // Relabelled as version 1 or 2 with that version's CRC: its layer tags do not decode as
    // untagged dense layers. As version 3, with its CRC: the same payload, read alike.
    for v in [1, 2] {
        let b = relabel(&small_tiled_blob(), v);
        assert_eq!(Model::from_bytes(&b), Err(Error::Malformed));
    }
    let b = relabel(&small_tiled_blob(), 3);
    assert_eq!(
        Model::from_bytes(&b).unwrap(),
        Model::from_bytes(&small_tiled_blob()).unwrap()
    );
    // Relabelled without its checksum: version 4's checksum is not the CRC.
    let mut b = small_tiled_blob();
    b[4] = 3;
    assert!(matches!(
        Model::from_bytes(&b),
        Err(Error::ChecksumMismatch { .. })
    ));
    let mut b = blob.clone();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    assert!(matches!(
        Model::from_bytes(&b),
        Err(Error::ChecksumMismatch { .. })
    ));
    let mut b = blob.clone();
    b.push(0);
    assert_eq!(Model::from_bytes(&b), Err(Error::TrailingBytes));
    let short = &blob[..blob.len() - 10];
    assert_eq!(
        Model::from_bytes(short),
        Err(Error::Truncated {
            needed: blob.len() as u32,
            available: short.len() as u32
        })
    );
}

/// `blob` labelled as format `version`, with that version's checksum.
fn relabel(blob: &[u8], version: u16) -> Vec<u8> {
    let mut b = blob.to_vec();
    b[4..6].copy_from_slice(&version.to_le_bytes());
    let check = tinyvae_format::payload_check(version, &b[HEADER_LEN..]);
    b[12..16].copy_from_slice(&check.to_le_bytes());
    b
}

/// A payload framed with a valid header and checksum, so that what follows the checksum
/// check is tested.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut blob = Vec::new();
    blob.extend_from_slice(b"TVAE");
    blob.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    blob.extend_from_slice(&0u16.to_le_bytes());
    blob.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    blob.extend_from_slice(&tinyvae_format::checksum(payload).to_le_bytes());
    blob.extend_from_slice(payload);
    blob
}

/// Re-frames a model with a correct CRC, so validation (not the CRC) must catch the error.
fn reframe(m: &Model<'_>) -> Vec<u8> {
    frame(&postcard::to_allocvec(m).unwrap())
}

#[test]
fn validation_names_the_layer_and_field() {
    let owned = OwnedModel::synthetic(&spec(ModelKind::Vae, vec![24, 12], 4), 1);
    let buf = owned.buffers();

    // A layer whose input does not chain from the previous output.
    let mut m = owned.view(&buf).unwrap();
    m.encoder.layers[1].matrix_mut().in_dim = 23;
    assert_eq!(
        Model::from_bytes(&reframe(&m)),
        Err(Error::ShapeMismatch {
            network: NetworkId::Encoder,
            layer: 1,
            field: "in_dim does not match the previous output"
        })
    );

    // A shift out of range.
    let mut o = owned.clone();
    let mut c = owned.decoder[0].channels();
    c.shift.iter_mut().for_each(|s| *s = 31);
    o.decoder[0] = owned.decoder[0].with_channels(&c);
    let b2 = o.buffers();
    assert_eq!(
        Model::from_bytes(&reframe(&o.view(&b2).unwrap())),
        Err(Error::ValueOutOfRange {
            field: "layer shift"
        })
    );
    // The writer refuses it too.
    assert!(o.to_bytes().is_err());

    // A bias so large the accumulator could overflow.
    let mut c = owned.decoder[0].channels();
    c.bias[3] = i32::MAX - 1000;
    o.decoder[0] = owned.decoder[0].with_channels(&c);
    let b3 = o.buffers();
    assert_eq!(
        Model::from_bytes(&reframe(&o.view(&b3).unwrap())),
        Err(Error::AccumulatorOverflow {
            network: NetworkId::Decoder,
            layer: 0,
            row: 3
        })
    );
}

/// A blob is at most 2% + 512 bytes larger than the raw int8 weights, int32 biases and
/// per-channel parameters it holds (golden vectors excluded), for the default 784-400-20 VAE
/// and the MCU preset 784-256-16.
#[test]
fn container_overhead_is_small() {
    for (hidden, latent) in [(400u16, 20u16), (256, 16)] {
        let mut s = spec(ModelKind::Vae, vec![hidden], latent);
        s.width = 28;
        s.height = 28;
        s.golden = false;
        s.mixture = 0;
        let blob = OwnedModel::synthetic(&s, 3).to_bytes().unwrap();
        let m = Model::from_bytes(&blob).unwrap();
        let raw = m.raw_parameter_bytes();
        let limit = raw + raw / 50 + 512;
        assert!(
            blob.len() <= limit,
            "784-{hidden}-{latent}: blob {} bytes, raw {raw}, limit {limit}",
            blob.len()
        );
        assert!(blob.len() > HEADER_LEN);
    }
}

/// Tiled layers: padding must be zero, lead bytes zero, tiles aligned.
#[test]
fn tiled_layers_are_validated() {
    let owned = OwnedModel::synthetic(&spec(ModelKind::Vae, vec![23, 10], 5), 2)
        .with_layout(WeightLayout::Tiles4x4);
    let buf = owned.buffers();
    let view = owned.view(&buf).unwrap();
    assert!(view.validate().is_ok());

    // A non-zero weight in the padding (layer 0 of the encoder: 64 inputs, 23 outputs, so
    // rows 23 of the last block are padding).
    let l = view.encoder.layers[0].matrix();
    let mut w: Vec<u8> = l.packed_weights().iter().map(|&x| x as u8).collect();
    let pad = WeightLayout::Tiles4x4.index(64, 23, 5);
    assert_eq!(w[pad], 0);
    w[pad] = 1;
    let mut m = view.clone();
    m.encoder.layers[0].matrix_mut().weights = I8s::from_bytes(&w).unwrap();
    assert_eq!(
        m.validate(),
        Err(Error::ValueOutOfRange {
            field: "tiled weights padding"
        })
    );

    // A bias near the bound in a whole block of tiles: the rows whose bias leaves room for
    // the worst case are not summed, this one is, and overflows.
    let mut c = owned.decoder[1].channels();
    c.bias[5] = i32::MAX - 1000;
    let mut o = owned.clone();
    o.decoder[1] = owned.decoder[1].with_channels(&c);
    let b = o.buffers();
    assert_eq!(
        o.view(&b).unwrap().validate(),
        Err(Error::AccumulatorOverflow {
            network: NetworkId::Decoder,
            layer: 1,
            row: 5
        })
    );
    // Just inside the bound (128 * sum |w| to spare) it is accepted.
    let sum: i32 = (0..10)
        .map(|i| i32::from(view.decoder.layers[1].matrix().weight(5, i)).abs())
        .sum();
    c.bias[5] = i32::MAX - 128 * sum;
    o.decoder[1] = owned.decoder[1].with_channels(&c);
    let b = o.buffers();
    assert_eq!(o.view(&b).unwrap().validate(), Ok(()));

    // A non-zero weight in a padding column (layer 0 of the decoder: 5 inputs, so columns 5
    // to 7 of each row's last tile are padding), in a row that is not padding.
    let d = view.decoder.layers[0].matrix();
    assert_eq!(d.in_dim, 5);
    for (row, col) in [(0, 5), (9, 7), (2, 6)] {
        let mut w: Vec<u8> = d.packed_weights().iter().map(|&x| x as u8).collect();
        let pad = WeightLayout::Tiles4x4.index(5, row, col);
        assert_eq!(w[pad], 0);
        w[pad] = 0x80;
        let mut m = view.clone();
        m.decoder.layers[0].matrix_mut().weights = I8s::from_bytes(&w).unwrap();
        assert_eq!(
            m.validate(),
            Err(Error::ValueOutOfRange {
                field: "tiled weights padding"
            }),
            "row {row} column {col}"
        );
    }

    // A non-zero lead byte.
    let mut lead = vec![1u8];
    lead.extend(l.packed_weights().iter().map(|&x| x as u8));
    let mut m = view.clone();
    m.encoder.layers[0].matrix_mut().weights = I8s::from_bytes(&lead).unwrap();
    assert_eq!(
        m.validate(),
        Err(Error::ValueOutOfRange {
            field: "tiled weights lead bytes"
        })
    );

    // Tiles that do not start on a 4-byte boundary: without lead bytes, some layer of some
    // model is misaligned, and the borrowed writer refuses it naming the layer.
    let misaligned = (0..16).any(|seed| {
        let o = OwnedModel::synthetic(&spec(ModelKind::Vae, vec![23, 10], 5), seed)
            .with_layout(WeightLayout::Tiles4x4);
        let b = o.buffers();
        let r = o.view(&b).unwrap().to_bytes();
        assert!(
            matches!(r, Ok(_) | Err(Error::MisalignedWeights { .. })),
            "{r:?}"
        );
        r.is_err()
    });
    assert!(misaligned);
}

/// Convolution shapes that do not chain, do not match their geometry or the data, are
/// refused naming the layer.
#[test]
fn conv_shapes_are_validated() {
    let owned = OwnedModel::synthetic(&conv_spec(), 3);
    let buf = owned.buffers();
    let view = owned.view(&buf).unwrap();
    assert!(view.validate().is_ok());
    type Case = (fn(&mut Model<'_>), NetworkId, u8, &'static str);
    let cases: [Case; 6] = [
        // The first convolution reads the data's values in another shape.
        (
            |m| {
                let c = conv_mut(m, true, 0);
                (c.in_height, c.in_width) = (c.in_width, c.in_height);
            },
            NetworkId::Encoder,
            0,
            "conv input shape",
        ),
        // Kernel, stride and padding do not give the output size.
        (
            |m| conv_mut(m, true, 0).stride = 1,
            NetworkId::Encoder,
            0,
            "conv shape",
        ),
        (
            |m| conv_mut(m, true, 1).padding = 2,
            NetworkId::Encoder,
            1,
            "conv geometry",
        ),
        // The second convolution reads another shape than the first wrote (same length).
        (
            |m| {
                let c = conv_mut(m, true, 1);
                (c.in_height, c.in_width) = (c.in_width, c.in_height);
            },
            NetworkId::Encoder,
            1,
            "conv input shape",
        ),
        // The last transposed convolution does not write the data's shape.
        (
            |m| conv_mut(m, false, 3).out_channels = 2,
            NetworkId::Decoder,
            3,
            "conv matrix shape",
        ),
        // A transposed convolution whose output is too large for its geometry.
        (
            |m| conv_mut(m, false, 2).out_height += 2,
            NetworkId::Decoder,
            2,
            "conv shape",
        ),
    ];
    for (i, (change, network, layer, field)) in cases.into_iter().enumerate() {
        let mut m = view.clone();
        change(&mut m);
        let err = m.validate().unwrap_err();
        let got = match err {
            Error::ShapeMismatch {
                network,
                layer,
                field,
            } => (network, layer, field),
            e => panic!("case {i}: {e:?}"),
        };
        assert_eq!(got, (network, layer, field), "case {i}");
    }
}

fn conv_mut<'m, 'a>(
    m: &'m mut Model<'a>,
    encoder: bool,
    layer: usize,
) -> &'m mut tinyvae_format::ConvShape {
    let net = if encoder {
        &mut m.encoder
    } else {
        &mut m.decoder
    };
    match &mut net.layers[layer] {
        tinyvae_format::Layer::Conv2d(c) | tinyvae_format::Layer::ConvTranspose2d(c) => {
            &mut c.shape
        }
        tinyvae_format::Layer::Dense(_) => panic!("layer {layer} is dense"),
    }
}

/// A data shape whose value count wraps in 32 bits (16 x 2^32 + 784) is refused on every
/// target: sizes are computed in 64 bits.
#[test]
fn a_data_shape_that_wraps_in_32_bits_is_refused() {
    let owned = OwnedModel::synthetic(&spec(ModelKind::Vae, vec![8], 4), 1);
    let buf = owned.buffers();
    let mut m = owned.view(&buf).unwrap();
    // 65535 * 65535 * 16 = 0x3_FFFE_0001 * 16: in 32 bits it wraps to a small number.
    (m.data.width, m.data.height, m.data.channels) = (65535, 65535, 16);
    assert_eq!(m.data.len_u64(), 65535 * 65535 * 16);
    assert_eq!(
        m.validate(),
        Err(Error::ValueOutOfRange {
            field: "data shape"
        })
    );
    assert!(Model::from_bytes(&reframe(&m)).is_err());
}

/// A decoder-only model: written as the newest version, readable as version 3; relabelled
/// as version 2, refused; with encoder golden vectors, refused.
#[test]
fn decoder_only_models_need_version_3() {
    let blob = decoder_only_blob();
    assert_eq!(u16::from(blob[4]), FORMAT_VERSION);
    let m = Model::from_bytes(&blob).unwrap();
    assert!(!m.has_encoder());
    assert_eq!(m.min_version(), 3);
    assert!(Model::from_bytes(&relabel(&blob, 3)).is_ok());
    assert_eq!(Model::from_bytes(&relabel(&blob, 2)), Err(Error::Malformed));
    let full = OwnedModel::synthetic(&conv_spec(), 6);
    let fb = full.buffers();
    let mut m = full.view(&fb).unwrap();
    m.encoder.layers.clear();
    assert_eq!(
        m.validate(),
        Err(Error::SectionMismatch {
            field: "golden encoder vectors without an encoder"
        })
    );
}

/// Files written by the previous version of this crate (format versions 1 and 2, a dense VAE
/// with golden vectors and a mixture prior, row-major and tiled): still read, and converted
/// to the newest version with every value kept.
#[test]
fn versions_1_and_2_are_read_and_converted() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (file, version) in [("v1.tvae", 1u8), ("v2.tvae", 2)] {
        let old = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(old[4], version);
        let m = Model::from_bytes(&old).unwrap();
        assert_eq!(m.min_version(), u16::from(version));
        assert!(m.golden.is_some() && m.has_encoder());
        let new = OwnedModel::from_model(&m).to_bytes().unwrap();
        assert_eq!(u16::from(new[4]), FORMAT_VERSION);
        let back = Model::from_bytes(&new).unwrap();
        // Everything but where the arrays lie in the blob: compare the owned copies.
        assert_eq!(
            OwnedModel::from_model(&back),
            OwnedModel::from_model(&m),
            "{file}"
        );
        // And a conversion of the conversion is byte-identical.
        assert_eq!(OwnedModel::from_model(&back).to_bytes().unwrap(), new);
    }
}

proptest::proptest! {
    /// The format's CRC is CRC-32/ISO-HDLC: equal to the `crc` crate's on any bytes.
    #[test]
    fn crc32_is_iso_hdlc(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let reference = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
        proptest::prop_assert_eq!(tinyvae_format::crc32(&bytes), reference.checksum(&bytes));
    }
}

#[test]
fn crc32_check_value() {
    // The catalogue's check value: CRC-32/ISO-HDLC of "123456789".
    assert_eq!(tinyvae_format::crc32(b"123456789"), 0xCBF4_3926);
}

/// The layer descriptions reports and results tables print.
#[test]
fn layers_describe_themselves() {
    let s = tinyvae_format::ConvShape {
        in_height: 28,
        in_width: 28,
        in_channels: 1,
        out_height: 14,
        out_width: 14,
        out_channels: 32,
        kernel: 4,
        stride: 2,
        padding: 1,
    };
    assert_eq!(s.to_string(), "28x28x1->14x14x32");
    // Layers, in both forms: the reports' and, with `{:#}`, the count tables'.
    let blob = conv_blob();
    let m = Model::from_bytes(&blob).unwrap();
    let said: Vec<(String, String)> = m
        .encoder
        .layers
        .iter()
        .map(|l| (l.to_string(), format!("{l:#}")))
        .collect();
    let want = [
        ("conv 7x9x3->4x5x4 k3 s2 p1", "conv 7x9x3->4x5x4"),
        ("conv 4x5x4->3x4x5 k2 s1 p0", "conv 4x5x4->3x4x5"),
        ("60->6", "60x6"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(said[..3], want[..]);
}

/// A decoder-only model whose transposed convolution has kernel and stride `s`, from 1x1x1
/// to `s x s x 1`: `s^2` phases of one tap each.
fn wide_stride_blob(s: u8) -> Vec<u8> {
    use tinyvae_format::testkit::synthetic::SyntheticConv;
    let spec = SyntheticSpec {
        width: u16::from(s),
        height: u16::from(s),
        conv: vec![SyntheticConv {
            channels: 1,
            kernel: s,
            stride: s,
            padding: 0,
        }],
        hidden: vec![],
        decoder_only: true,
        ..spec(ModelKind::Vae, vec![], 4)
    };
    OwnedModel::synthetic(&spec, 9).to_bytes().unwrap()
}

/// FORMAT.md: a transposed convolution's stride is at most 8 (its phases, `stride^2` of
/// them, each found by walking the ones before it, bound validation and decoding to 4,096
/// steps): 8 is read, 9 is refused as bad geometry.
#[test]
fn a_transposed_convolution_of_stride_over_8_is_refused() {
    let blob = wide_stride_blob(8);
    let mut m = Model::from_bytes(&blob).unwrap();
    let last = m.decoder.layers.len() - 1;
    if let tinyvae_format::Layer::ConvTranspose2d(c) = &mut m.decoder.layers[last] {
        (c.shape.kernel, c.shape.stride) = (9, 9);
    }
    assert_eq!(
        m.validate(),
        Err(Error::ShapeMismatch {
            network: NetworkId::Decoder,
            layer: last as u8,
            field: "conv geometry",
        })
    );
}

/// FORMAT.md: a convolution's matrix has `K` and `R` in 1..=16384, as a dense layer's widths:
/// a patch of 255 x 255 taps (K = 65025) over a 1x1 input is refused.
#[test]
fn a_conv_matrix_wider_than_the_format_allows_is_refused() {
    let blob = wide_stride_blob(8);
    let mut m = Model::from_bytes(&blob).unwrap();
    assert!(m.validate().is_ok());
    let last = m.decoder.layers.len() - 1;
    if let tinyvae_format::Layer::ConvTranspose2d(c) = &mut m.decoder.layers[last] {
        // A patch of 129 x 129 taps over one channel: K = 16641, consistent with the shape.
        (c.shape.kernel, c.shape.stride, c.matrix.in_dim) = (129, 8, 16641);
    }
    assert_eq!(
        m.validate(),
        Err(Error::ShapeMismatch {
            network: NetworkId::Decoder,
            layer: last as u8,
            field: "conv matrix shape",
        })
    );
}

/// Useful multiply-accumulates (padding taps left out), on the shapes of the README's peer
/// comparison: conv 14x14x32 -> 7x7x64, k4 s2 p1, is 26 x 26 x 32 x 64 = 1,384,448 (every
/// output row of 7 meets 4 input rows but the first and last, which meet 3); a
/// convolution without padding meets every tap; a transposed convolution the same pairs
/// read backwards.
#[test]
fn useful_macs_leave_the_padding_out() {
    use tinyvae_format::{Conv, ConvShape, Layer};
    let blob = conv_blob();
    let m = Model::from_bytes(&blob).unwrap();
    let base = *m.encoder.layers[0].matrix();
    let conv = |shape: ConvShape, out: u16, inp: u64, t: bool| {
        let mut matrix = base;
        matrix.out_dim = out;
        matrix.in_dim = inp as u16;
        let c = Conv { shape, matrix };
        if t {
            Layer::ConvTranspose2d(c)
        } else {
            Layer::Conv2d(c)
        }
    };
    let shape = |(ih, ic): (u16, u16), (oh, oc): (u16, u16), k: u8, s: u8, p: u8| ConvShape {
        in_height: ih,
        in_width: ih,
        in_channels: ic,
        out_height: oh,
        out_width: oh,
        out_channels: oc,
        kernel: k,
        stride: s,
        padding: p,
    };
    let down = conv(shape((14, 32), (7, 64), 4, 2, 1), 64, 16 * 32, false);
    assert_eq!(down.useful_macs(), 26 * 26 * 32 * 64);
    assert_eq!(down.macs(), 7 * 7 * 16 * 32 * 64);
    // Its transpose: 7x7x64 -> 14x14x32, the same pairs of input and tap.
    let up = conv(shape((7, 64), (14, 32), 4, 2, 1), 32, 16 * 64, true);
    assert_eq!(up.useful_macs(), 26 * 26 * 64 * 32);
    // No padding: every tap is useful.
    let valid = conv(shape((14, 8), (6, 4), 4, 2, 0), 4, 16 * 8, false);
    assert_eq!(valid.useful_macs(), valid.macs());
    // 3x3, stride 1, padding 1 over 14: 14 outputs, 12 meet 3 rows, 2 meet 2: 40 per axis.
    let same = conv(shape((14, 32), (14, 32), 3, 1, 1), 32, 9 * 32, false);
    assert_eq!(same.useful_macs(), 40 * 40 * 32 * 32);
}

/// A prior grouped by class (version 5): written and read back whole; refused under
/// version 4's label; its class table checked (no class, a class without a component, a
/// last entry short of the components).
#[test]
fn class_mixtures_need_version_5_and_a_whole_class_table() {
    let owned = OwnedModel::synthetic(&spec(ModelKind::Vae, vec![12], 4), 2).with_classes(2, 5);
    let blob = owned.to_bytes().unwrap();
    assert_eq!(u16::from(blob[4]), FORMAT_VERSION);
    let m = Model::from_bytes(&blob).unwrap();
    assert_eq!(m.min_version(), 5);
    let Prior::ClassMixture(c) = &m.prior else {
        panic!("not a class mixture")
    };
    assert_eq!(c.classes(), 2);
    // Three components in two classes.
    assert_eq!(c.class_range(0), Some(0..1));
    assert_eq!(c.class_range(1), Some(1..3));
    assert_eq!(c.class_range(2), None);
    assert_eq!(OwnedModel::from_model(&m), owned);
    assert_eq!(Model::from_bytes(&relabel(&blob, 4)), Err(Error::Malformed));
    // A version-4 file is a valid version-5 file.
    let plain = OwnedModel::synthetic(&spec(ModelKind::Vae, vec![12], 4), 2)
        .to_bytes()
        .unwrap();
    assert!(Model::from_bytes(&relabel(&plain, 4)).is_ok());

    let bad = |ends: Vec<u16>| {
        let mut o = owned.clone();
        if let OwnedPrior::ClassMixture { class_ends, .. } = &mut o.prior {
            *class_ends = ends;
        }
        let buf = o.buffers();
        let view = o.view(&buf).unwrap();
        view.validate()
    };
    let err = Err(Error::SectionMismatch {
        field: "prior.class_ends",
    });
    assert_eq!(bad(vec![]), err);
    assert_eq!(bad(vec![1, 1, 3]), err);
    assert_eq!(bad(vec![0, 3]), err);
    assert_eq!(bad(vec![1, 2]), err);
    assert_eq!(bad(vec![2, 3]), Ok(()));
}

/// A model's footprint accounts for every byte of its file, and reads the version from the
/// header; another file's bytes are refused.
#[test]
fn the_footprint_accounts_for_every_byte() {
    let blob = conv_blob();
    let m = Model::from_bytes(&blob).unwrap();
    let f = m.footprint(&blob).unwrap();
    assert_eq!(f.version, tinyvae_format::FORMAT_VERSION);
    assert_eq!(f.total, blob.len());
    assert_eq!(
        f.weights + f.per_channel + f.tables + f.golden + f.other,
        f.total
    );
    assert_eq!(f.weights + f.per_channel, m.raw_parameter_bytes());
    assert!(f.golden > 0 && f.tables > 0 && f.parameters > 0);
    let mut other = blob.clone();
    let last = other.len() - 1;
    other[last] ^= 1;
    assert!(m.footprint(&other).is_err());
}

/// A second stage's network is checked as a network of its own (`NetworkId::Prior`), with
/// its own rules: dense layers, `I16` last, its input conversion and zero-point in range.
#[test]
fn a_hostile_second_stage_is_named() {
    let good =
        OwnedModel::synthetic(&spec(ModelKind::Vae, vec![12], 4), 3).with_second_stage(4, &[8], 6);
    assert!(good.to_bytes().is_ok());
    let with = |f: &dyn Fn(&mut i32, &mut i8, &mut Vec<tinyvae_format::owned::OwnedLayer>)| {
        let mut m = good.clone();
        let OwnedPrior::SecondStage {
            input_multiplier,
            input_zero_point,
            layers,
            ..
        } = &mut m.prior
        else {
            unreachable!()
        };
        f(input_multiplier, input_zero_point, layers);
        m.to_bytes().map(|_| ())
    };
    let out_of_range = |field| Err(Error::ValueOutOfRange { field });
    assert_eq!(
        with(&|m, _, _| *m = 5),
        out_of_range("prior.input_multiplier")
    );
    assert_eq!(
        with(&|_, zp, _| *zp = 3),
        out_of_range("prior input zero-point")
    );
    assert_eq!(
        with(&|_, _, l| l[0].matrix.activation = tinyvae_format::Activation::PixelTable),
        out_of_range("prior layer activation")
    );
    assert_eq!(
        with(&|_, _, l| l.clear()),
        Err(Error::ShapeMismatch {
            network: NetworkId::Prior,
            layer: 255,
            field: "no layers"
        })
    );
    assert_eq!(
        with(&|_, _, l| l[1].matrix.output_type = tinyvae_format::OutputType::I8),
        Err(Error::ShapeMismatch {
            network: NetworkId::Prior,
            layer: 1,
            field: "output_type"
        })
    );
    // A layer dropped: the hidden layer's 8 outputs are not the latent's 4.
    assert_eq!(
        with(&|_, _, l| {
            l.pop();
        }),
        Err(Error::ShapeMismatch {
            network: NetworkId::Prior,
            layer: 0,
            field: "output_type"
        })
    );
    // Wider than the engine's buffers.
    let wide = OwnedModel::synthetic(&spec(ModelKind::Vae, vec![12], 4), 3).with_second_stage(
        4,
        &[257],
        6,
    );
    assert_eq!(
        wide.to_bytes().map(|_| ()),
        out_of_range("prior layer width")
    );
    // A version-5 file cannot hold a second stage.
    let blob = relabel(&good.to_bytes().unwrap(), 5);
    assert_eq!(Model::from_bytes(&blob).unwrap_err(), Error::Malformed);
    // Its layers as read.
    let blob = good.to_bytes().unwrap();
    let m = Model::from_bytes(&blob).unwrap();
    let Prior::SecondStage(s) = &m.prior else {
        panic!("not a second stage")
    };
    assert_eq!((s.draws(), s.layers.len(), m.min_version()), (4, 2, 6));
}
