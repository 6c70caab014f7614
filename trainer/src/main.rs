//! `trainer`: train, evaluate, sample, export and inspect tinyvae models.

use anyhow::Result;
use clap::Parser;
use tinyvae_trainer::classifier::{train_classifier, ClassifierOptions};
use tinyvae_trainer::data::IdxLayout;

mod cli;
mod cmd;

use cli::{Cli, Cmd};
use cmd::{
    eval::cmd_eval, export::cmd_export, inspect::cmd_inspect, sample::cmd_sample, train::cmd_train,
};
use cmd::{load_data, load_run, IDX_LAYOUT};

fn main() {
    let cli = Cli::parse();
    tinyvae_trainer::ops::init_runtime(cli.threads);
    let _ = IDX_LAYOUT.set(if cli.emnist {
        IdxLayout::Transposed
    } else {
        IdxLayout::RowMajor
    });
    if let Err(e) = run(cli.cmd) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Train(a) => cmd_train(a),
        Cmd::Eval(a) => cmd_eval(a),
        Cmd::Classifier {
            data,
            out,
            epochs,
            target,
            seed,
        } => {
            let data = load_data(data.as_deref())?;
            let opts = ClassifierOptions {
                epochs,
                target,
                seed,
                ..Default::default()
            };
            let c = train_classifier(&data, &opts)?;
            c.save(&out)?;
            println!(
                "wrote {} ({} classes, test accuracy {:.2}%)",
                out.display(),
                c.info.classes,
                100.0 * c.info.test_accuracy
            );
            Ok(())
        }
        Cmd::Sample {
            input,
            int8,
            count,
            seed,
            temperature,
            columns,
            out,
            raw,
        } => cmd_sample(&input, int8, (count, seed, temperature), columns, &out, raw),
        Cmd::Export(a) => cmd_export(a),
        Cmd::Pictures {
            checkpoint,
            data,
            out,
            seed,
        } => {
            let (ck, net, data) = load_run(&checkpoint, data.as_deref())?;
            for f in tinyvae_trainer::pictures::all(&net, &data, &ck.progress.history, &out, seed)?
            {
                println!("wrote {}", f.display());
            }
            Ok(())
        }
        Cmd::Shapes {
            out,
            width,
            height,
            rgb,
            count,
            seed,
            classes,
        } => {
            tinyvae_trainer::shapes::write(&out, width, height, rgb, count, seed, classes)?;
            println!(
                "wrote {count} {width}x{height} {} images into {}",
                if rgb { "RGB" } else { "grey" },
                out.display()
            );
            Ok(())
        }
        Cmd::Inspect {
            model,
            target,
            target_cpu,
            c_header,
            check,
        } => cmd_inspect(
            &model,
            (target.as_deref(), target_cpu.as_deref()),
            c_header.as_deref(),
            check,
        ),
    }
}
