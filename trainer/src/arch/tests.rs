//! The shapes' checks and layer lists.

use super::presets::stage;
use super::*;

fn conv_arch(w: usize, h: usize, stages: &str) -> Arch {
    Arch {
        conv: stages.split(',').map(|s| s.parse().unwrap()).collect(),
        ..Arch::dense(Kind::Vae, w, h, vec![], 20)
    }
}

#[test]
fn the_reference_conv_preset_has_the_pytorch_shapes() {
    let a = conv_arch(28, 28, "32:4:2:1,64:4:2:1");
    a.validate().unwrap();
    assert_eq!(a.flat_features(), 3136);
    assert_eq!(a.encoder_widths(), vec![3136, 40]);
    assert_eq!(a.decoder_widths(), vec![20, 3136]);
    let dec = a.decoder_layers();
    assert_eq!(dec.len(), 3);
    assert!(dec[0].relu && dec[1].relu && !dec[2].relu);
    assert_eq!(dec[2].kind.outputs(), 784);
    // The reference prints params=258025: its layers, counted the same way.
    let torch = (16 + 1) * 32
        + (512 + 1) * 64
        + 2 * (3136 + 1) * 20
        + (20 + 1) * 3136
        + (64 * 32 * 16 + 32)
        + (32 * 16 + 1);
    assert_eq!(a.parameters(), torch);
    assert_eq!(torch, 258_025);
}

#[test]
fn odd_sizes_mirror_back_to_the_image_size() {
    let a = conv_arch(13, 9, "8:3:2:1,4:3:2:0");
    a.validate().unwrap();
    let dec = a.decoder_layers();
    assert_eq!(dec.last().unwrap().kind.outputs(), 13 * 9);
}

#[test]
fn bad_shapes_are_named_before_training() {
    let err = |a: Arch| a.validate().unwrap_err().to_string();
    assert!(err(conv_arch(4, 4, "8:4:2:1,8:4:2:1,8:4:2:1")).contains("too small for the strides"));
    assert!(err(conv_arch(3, 3, "8:7:1:1")).contains("larger than the 3x3 images"));
    assert!(err(conv_arch(28, 28, "0:4:2:1")).contains("channels 0"));
    assert!(err(conv_arch(28, 28, "8:4:0:1")).contains("stride 0"));
    assert!(err(conv_arch(28, 28, "8:3:1:3")).contains("padding 3"));
    assert!(err(conv_arch(28, 28, "8:2:3:0")).contains("stride 3, longer than its kernel 2"));
    assert!(err(conv_arch(28, 28, "8:9:9:0")).contains("stride at most 8"));
    let mut a = conv_arch(28, 28, "8:4:2:1");
    a.latent = 0;
    assert!(err(a).contains("--latent"));
    let mut a = Arch::dense(Kind::Ae, 28, 28, vec![64, 0], 8);
    assert!(err(a.clone()).contains("--hidden: layer 2"));
    a.hidden = vec![64];
    a.channels = 0;
    assert!(err(a).contains("with 0 channels"));
}

#[test]
fn stage_syntax() {
    assert!("32:4:2".parse::<ConvStage>().is_err());
    assert!("a:4:2:1".parse::<ConvStage>().is_err());
    assert_eq!("32:4:2:1".parse::<ConvStage>().unwrap(), stage(32));
}
