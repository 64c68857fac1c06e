//! `agentc index build`: embeds a corpus with a sentence-embedding model and writes the vector
//! index a workflow's `indexes:` entry names.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use agentc_runtime::index::{Chunking, DEFAULT_CHUNK_TOKENS, read_corpus};
use agentc_runtime::{EmbeddingModel, Error, Index, Metric};
use clap::{Args, Subcommand, ValueEnum};

use super::EXIT_INVALID;

#[derive(Args, Debug)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Subcommand, Debug)]
enum IndexCommand {
    /// Build an index from a folder of .txt/.md files (cut into overlapping passages) or from a
    /// JSONL file with one {"id": ..., "text": ...} object per line.
    ///
    /// Example: agentc index build examples/corpus -o indexes/corpus
    Build(BuildArgs),
    /// Print the passages of an index nearest to a question, best first (a quick check of an
    /// index; `retrieve` nodes do the same inside a workflow).
    ///
    /// Example: agentc index search indexes/corpus "When did people land on the Moon?"
    Search(SearchArgs),
}

#[derive(Args, Debug)]
struct SearchArgs {
    /// An index directory written by `agentc index build`.
    index: PathBuf,
    /// The question or text to look up.
    query: String,
    /// Passages to print.
    #[arg(short, default_value_t = DEFAULT_SEARCH_K)]
    k: usize,
    /// The sentence-embedding model the index was built with.
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model: PathBuf,
}

/// Passages `agentc index search` prints by default (the `k` of a `retrieve` node).
const DEFAULT_SEARCH_K: usize = 4;
/// Characters of each passage `agentc index search` prints.
const PREVIEW_CHARS: usize = 160;

#[derive(Args, Debug)]
struct BuildArgs {
    /// A folder (read recursively; hidden entries skipped) or a .jsonl file.
    src: PathBuf,
    /// Directory to write the index into (created; its index files are replaced).
    #[arg(short, long)]
    output: PathBuf,
    /// Sentence-embedding model directory (model.safetensors, tokenizer.json, config.json).
    /// Queries must use the same model.
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// Longest passage in word-piece tokens; consecutive passages overlap by a fifth of it.
    #[arg(long, default_value_t = DEFAULT_CHUNK_TOKENS)]
    chunk_tokens: usize,
    /// How vectors are compared; must match the workflow's `metric` for this index.
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
    metric: MetricArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MetricArg {
    Cosine,
    Dot,
    L2,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Cosine => Metric::Cosine,
            MetricArg::Dot => Metric::Dot,
            MetricArg::L2 => Metric::L2,
        }
    }
}

pub fn index(args: IndexArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        IndexCommand::Build(args) => match build(&args) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(
                e @ (Error::ModelFile { .. }
                | Error::IndexSource { .. }
                | Error::IndexSourceLine { .. }
                | Error::IndexInput(_)),
            ) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(EXIT_INVALID))
            }
            Err(e) => Err(e.into()),
        },
        IndexCommand::Search(args) => match search(&args) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e @ (Error::ModelFile { .. } | Error::IndexFile { .. } | Error::IndexQuery(_))) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(EXIT_INVALID))
            }
            Err(e) => Err(e.into()),
        },
    }
}

fn search(args: &SearchArgs) -> agentc_runtime::Result<()> {
    let index = Index::load(&args.index)?;
    let model = EmbeddingModel::load(&args.model)?;
    if model.name() != index.meta().model {
        return Err(Error::IndexQuery(format!(
            "the index was built with model {}, not {}; pass its directory with --model",
            index.meta().model,
            model.name()
        )));
    }
    let query = model.embed(&[args.query.as_str()])?;
    let Some(query) = query.first() else {
        return Ok(());
    };
    for hit in index.search(query, args.k)? {
        let text: String = hit.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let preview: String = text.chars().take(PREVIEW_CHARS).collect();
        let more = if preview.len() < text.len() {
            "..."
        } else {
            ""
        };
        println!(
            "{:.3}  {} ({})\n       {preview}{more}",
            hit.score, hit.id, hit.source
        );
    }
    Ok(())
}

fn build(args: &BuildArgs) -> agentc_runtime::Result<()> {
    let started = Instant::now();
    eprintln!("loading {} ...", args.model.display());
    let model = EmbeddingModel::load(&args.model)?;
    eprintln!("reading {} ...", args.src.display());
    let passages = read_corpus(&args.src, Chunking::with_tokens(args.chunk_tokens), &model)?;
    let sources = {
        let mut s: Vec<&str> = passages.iter().map(|p| p.source.as_str()).collect();
        s.sort_unstable();
        s.dedup();
        s.len()
    };
    eprintln!(
        "embedding {} passages from {sources} sources ...",
        passages.len()
    );
    let index = Index::build(&model, args.metric.into(), passages, |done, total| {
        eprintln!("  {done}/{total}");
    })?;
    index.save(&args.output)?;
    let meta = index.meta();
    println!(
        "indexed {} passages ({} dims, {}, model {}) from {} into {} in {:.1} s",
        meta.passages,
        meta.dim,
        meta.metric,
        meta.model,
        args.src.display(),
        args.output.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
