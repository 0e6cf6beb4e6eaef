// The language model (task lm, tnn::TnnLM) in every command: train on a file of bytes, on a text
// as the subword ids of a SentencePiece model (--tokenizer, carried in the checkpoint) or on token
// files (--tokens) (also data-parallel under mpirun), eval (loss, perplexity, bits per byte of the
// text, at one length or several, with a plot), generate (exact incremental decoding, the
// checkpoint's tokenizer encoding the prompt and decoding the tokens), grad (the external
// gradient check).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tnn/core/rng.hpp>
#include <tnn/core/text.hpp>
#include <tnn/dist/evaluate.hpp>
#include <tnn/dist/trainer_hooks.hpp>
#include <tnn/infer/decoder.hpp>
#include <tnn/infer/evaluate.hpp>
#include <tnn/infer/sampling.hpp>
#include <tnn/io/file.hpp>
#include <tnn/io/tokenizer.hpp>
#include <tnn/io/stream.hpp>
#include <tnn/model/checkpoint.hpp>
#include <tnn/model/models.hpp>
#include <tnn/train/classify.hpp>  // kSeqLenMetadataKey, read_train_seq_len
#include <tnn/train/data.hpp>

#include "common.hpp"
#include "data_record.hpp"
#include "plot.hpp"
#include "processes.hpp"
#include "session.hpp"
#include "tasks.hpp"

namespace tnncli {
namespace {

// The length a checkpoint was trained at (its metadata), else this.
constexpr tnn::Index kDefaultEvalLength = 512;

// "runs/kjv.safetensors" -> "kjv": the default legend label of a checkpoint.
std::string default_label(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  const std::string ext = ".safetensors";
  if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0)
    name.resize(name.size() - ext.size());
  return name;
}

std::vector<tnn::Index> parse_lengths(const std::string& s) {
  const std::vector<tnn::Index> out = parse_positive_list(s, "--lengths");
  if (out.empty()) tnn::fail<tnn::ValueError>("--lengths: expected at least one length, got ", tnn::quote(s));
  return out;
}

}  // namespace

namespace {

// The tokenizer of the run: --tokenizer (a SentencePiece model), else with --tokens the ids of
// --vocab, else bytes. A resumed run given none keeps the saved run's (its checkpoint carries
// it); one given another is refused by its identity.
tnn::Tokenizer run_tokenizer(const TrainOptions& o) {
  if (!o.tokenizer.empty()) {
    tnn::Tokenizer t = tnn::Tokenizer::sentencepiece_file(o.tokenizer);
    if (o.vocab > 0 && o.vocab != t.vocab_size())
      tnn::fail<tnn::ValueError>("--vocab ", o.vocab, " is not the size of --tokenizer ", tnn::quote_path(o.tokenizer),
                                 ": ", t.describe());
    if (o.resume)  // said here in the tokenizer's words rather than as an identity difference
      if (const tnn::Tokenizer saved = tnn::read_tokenizer(o.out); saved != t)
        tnn::fail<tnn::ValueError>("--resume: ", tnn::quote_path(o.out), " was trained with the tokenizer ",
                                   saved.describe(), ", got --tokenizer ", tnn::quote_path(o.tokenizer), ": ",
                                   t.describe());
    return t;
  }
  if (o.resume && o.vocab == 0) {
    tnn::Tokenizer saved = tnn::read_tokenizer(o.out);
    if (!o.tokens.empty() || saved.has_text()) return saved;
    tnn::fail<tnn::ValueError>("--resume: ", tnn::quote_path(o.out), " was trained on token files (",
                               saved.describe(), "): expected --tokens FILE[,FILE...]");
  }
  if (o.tokens.empty()) {
    if (o.vocab > 0 || !o.token_dtype.empty())
      tnn::fail<tnn::ValueError>("--vocab and --token-dtype describe --tokens files; a text --data has ",
                                 "bytes (or the --tokenizer's ids)");
    return tnn::Tokenizer::bytes();
  }
  if (o.vocab < 1)
    tnn::fail<tnn::ValueError>("--tokens: expected --vocab V (ids are 0..V-1) or --tokenizer M.model, got neither");
  return tnn::Tokenizer::ids(o.vocab);
}

// A note when the tokenizer does not give back the text it encodes (tried on the first chunk):
// generated text then differs from the training text in those places, while bits per byte still
// count the original bytes.
void warn_if_lossy(const tnn::Tokenizer& t, const tnn::ByteCorpus& text) {
  if (t.is_bytes() || text.empty()) return;
  const std::size_t n = tnn::detail::encode_chunk_end(
      std::string_view(reinterpret_cast<const char*>(text.data()), text.bytes().size()), 0);
  const std::string sample(text.data(), text.data() + n);
  if (t.decode(t.encode(sample)) != sample)
    std::fprintf(stderr, "note: --tokenizer does not decode its ids back to the text (normalization, whitespace or "
                         "pieces it lacks); spm_train --normalization_rule_name=identity --remove_extra_whitespaces=false "
                         "--add_dummy_prefix=false --byte_fallback=true makes one that does\n");
}

// The default --valid-block (-1): blocks of 64 Ki units (bytes, or tokens of token files) from
// all over the data when it holds at least round(1 / fraction) of them (validation from every
// part of it, not only its end, whose style may differ), else the end. The identity and the
// checkpoint keep the result.
void choose_valid_block(TrainOptions& o, tnn::Index units, bool separate_valid) {
  if (o.valid_block >= 0) return;
  constexpr tnn::Index kBlock = 65536;
  const bool blocks = !separate_valid && o.valid_fraction > 0 && o.valid_fraction <= 0.5 &&
                      double(units) >= double(std::llround(1 / o.valid_fraction)) * double(kBlock);
  o.valid_block = blocks ? kBlock : 0;
}

}  // namespace

int train_lm(TrainOptions& o) {
  TrainSession session(o);
  // Under mpirun: data-parallel over the processes (tnn/dist/trainer_hooks.hpp); --batch is global.
  tnn::dist::Communicator& comm = communicator();
  if (comm.size() > 1) tnn::dist::check_global_batch(o.batch, comm.size());
  if (o.objective != "clm" && o.objective != "mlm")
    tnn::fail<tnn::ValueError>("--objective: expected clm or mlm, got ", tnn::quote(o.objective));
  if (o.data.empty() == o.tokens.empty())
    tnn::fail<tnn::ValueError>("train: expected either --data FILE (a text) or --tokens FILE[,FILE...] (token files), ",
                               o.data.empty() ? "got neither" : "got both");
  if (!o.tokens.empty() && !o.valid.empty())
    tnn::fail<tnn::ValueError>("--valid: with --tokens, give --valid-tokens FILE[,FILE...]");
  if (o.tokens.empty() && !o.valid_tokens.empty()) tnn::fail<tnn::ValueError>("--valid-tokens: expected --tokens too");
  const bool mlm = o.objective == "mlm";
  const tnn::LmObjective objective = mlm ? tnn::LmObjective::Mlm : tnn::LmObjective::Clm;
  session.check_outputs();
  session.check_resumed_task(tnn::Task::Lm);
  const tnn::Tokenizer tokenizer = run_tokenizer(o);
  // V: the tokenizer's ids, and the mask id after them for MLM (bytes: 256 and 257).
  const tnn::Index vocab = tokenizer.vocab_size() + (mlm ? 1 : 0);

  const tnn::TnnConfig cfg = session.model_config({{"task", "lm"}, {"vocab_size", vocab}, {"causal", !mlm}});
  const char* source = o.resume ? "--resume (the saved model)" : "--config";
  if (cfg.causal != !mlm)
    tnn::fail<tnn::ConfigError>(source, ": 'causal' is ", cfg.causal ? "true" : "false", " but --objective ",
                                o.objective, " needs ", mlm ? "false" : "true");
  if (cfg.vocab_size < vocab)
    tnn::fail<tnn::ConfigError>(source, ": vocab_size: expected >= ", vocab, " for --objective ", o.objective,
                                tokenizer.is_bytes() ? "" : " and the tokenizer " + tokenizer.describe(), ", got ",
                                cfg.vocab_size);

  // The data: a text (--data: its bytes, or the tokenizer's ids, each side of the split encoded
  // on its own so the held-out text is the byte model's), or token files (--tokens); validation
  // from --valid (--valid-tokens) or held out; the first --eval-tokens of it validate.
  tnn::TokenSplit split;
  std::optional<tnn::DataSplit> text;  // --data's bytes, split
  std::string held_out = !o.valid.empty() || !o.valid_tokens.empty() || o.valid_fraction == 0 ? "none" : "tail";
  std::optional<DataRecord> record;
  if (!o.tokens.empty()) {
    tnn::TokenCorpus all = token_files(o.tokens, o.token_dtype, tokenizer);
    choose_valid_block(o, all.size(), !o.valid_tokens.empty());
    split = o.valid_tokens.empty() ? held_out_split(all, o.valid_fraction, o.valid_block)
                                   : tnn::TokenSplit{all, token_files(o.valid_tokens, o.token_dtype, tokenizer)};
  } else {
    const tnn::ByteCorpus all = tnn::ByteCorpus::from_file(o.data);
    choose_valid_block(o, all.size(), !o.valid.empty());
    text = !o.valid.empty() ? tnn::DataSplit{all, tnn::ByteCorpus::from_file(o.valid)}
                            : held_out_split(all, o.valid_fraction, o.valid_block);
    if (held_out == "tail" && o.valid_block > 0) held_out = "blocks";
    record = session.data_record(all.bytes(), held_out);
    if (tokenizer.is_bytes()) {
      split = tnn::TokenSplit{text->train, text->valid};  // the bytes themselves, as before
    } else {
      warn_if_lossy(tokenizer, text->train);
      split = tnn::TokenSplit{tnn::tokenize_corpus(text->train, tokenizer), tnn::tokenize_corpus(text->valid, tokenizer)};
    }
  }
  const tnn::TokenCorpus valid = corpus_prefix(split.valid, o.eval_tokens);
  if (!valid.empty()) {  // checked now rather than at the first validation, maybe hours later
    try {
      const tnn::EvalWindows windows(valid, o.batch, o.seq_len, objective);
      (void)windows;
    } catch (const tnn::FormatError& e) {
      tnn::fail<tnn::FormatError>(e.what(), " (for validation: a larger --valid-fraction or --eval-tokens, or "
                                  "--valid-fraction 0 for none)");
    }
  }
  // The logits [batch, seq_len, vocab] are the largest buffer: their element count must fit.
  if (o.batch > INT64_MAX / o.seq_len / cfg.vocab_size)
    tnn::fail<tnn::ValueError>("--batch, --seq-len: expected batch * seq_len * vocab_size below 2^63, got ", o.batch,
                               " * ", o.seq_len, " * ", cfg.vocab_size);

  // A tokenizer other than bytes is part of the run's identity (a byte run's is what it was).
  nlohmann::json extra_identity = nlohmann::json::object();
  if (!tokenizer.is_bytes())
    extra_identity["tokenizer"] = {
        {"kind", tnn::to_string(tokenizer.kind())},
        {"vocab_size", tokenizer.vocab_size()},
        {"model_hash", tnn::dist::Communicator::hash_bytes(tokenizer.model_bytes().data(), tokenizer.model_bytes().size())}};

  tnn::TnnLM<float> model(cfg);
  model.init_weights(o.seed);
  session.prepare(model);
  tnn::LmTask<float> task(model, split.train, valid, o.batch, o.seq_len, objective, o.seed, tokenizer);
  if (record) task.set_metadata(kDataMetadataKey, record->to_json());
  task.set_metadata(tnn::kSeqLenMetadataKey, std::to_string(o.seq_len));
  if (comm.size() > 1) {
    task.set_shard(comm.rank(), comm.size());
    // Every rank must run the same job on the same data: one line and no training otherwise.
    std::uint64_t train_hash = 0xcbf29ce484222325ull;  // over the stored ids (for bytes: the bytes)
    split.train.for_each_run([&](const std::uint8_t* p, tnn::Index n, int width) {
      train_hash = tnn::dist::Communicator::hash_bytes(p, static_cast<std::size_t>(n) * static_cast<std::size_t>(width),
                                                       train_hash);
    });
    const nlohmann::json flags = {{"identity", session.identity(cfg, extra_identity)}, {"steps", o.steps}, {"out", o.out},
                                  {"resume", o.resume}, {"eval_every", o.eval_every}, {"eval_tokens", o.eval_tokens},
                                  {"save_every", o.save_every}, {"log_every", o.log_every},
                                  {"stop_after", o.stop_after}, {"max_bad_steps", o.max_bad_steps},
                                  {"train_tokens", split.train.size()}, {"valid_tokens", valid.size()},
                                  {"train_hash", train_hash}};
    comm.require_agreement(flags.dump(), "run settings (config, flags, data)");
  }

  tnn::TrainHooks<float> hooks =
      session.hooks(model.named_parameters(), mlm ? TrainSession::Validation::Mlm : TrainSession::Validation::Lm);
  // One process: changes nothing. TNN_DIST_NO_OVERLAP=1 (benchmarks): gradient sums after backward.
  tnn::dist::DataParallelHooks<float> parallel(comm, model, /*check_every=*/100,
                                               /*overlap=*/std::getenv("TNN_DIST_NO_OVERLAP") == nullptr);
  parallel.install(hooks);
  tnn::Trainer<float> trainer(task, session.trainer_config(cfg, extra_identity), hooks);
  session.resume(trainer);
  if (comm.size() > 1) tnn::dist::check_parameters_agree<float>(comm, model.named_parameters(), trainer.step());
  trainer.begin();
  std::fprintf(stderr, "model: %s, %s); data: %lld train / %lld valid %s%s; %s\n",
               model_summary(cfg, model.num_parameters()).c_str(), mlm ? "masked LM" : "causal LM",
               (long long)split.train.size(), (long long)split.valid.size(), split.train.unit(),
               tokenizer_note(tokenizer, split.train).c_str(), count_of(current_threads(), "thread").c_str());
  if (comm.size() > 1)
    std::fprintf(stderr, "data-parallel: %d processes x %s, %lld of the %lld rows of every batch each\n", comm.size(),
                 count_of(current_threads(), "thread").c_str(), (long long)(o.batch / comm.size()), (long long)o.batch);

  const tnn::TrainResult result = session.run(trainer);
  if (result.outcome == tnn::TrainResult::Outcome::Finished && comm.size() > 1 && parallel.reducer().steps() > 0)
    std::fprintf(stderr, "gradient sums over %d processes: %.2f ms per step not hidden behind backward\n",
                 comm.size(), 1e3 * parallel.reducer().exposed_seconds() / double(parallel.reducer().steps()));
  return TrainSession::exit_code(result);
}

void eval_lm(const EvalOptions& o) {
  if (o.batch < 1) tnn::fail<tnn::ValueError>("--batch: expected >= 1, got ", o.batch);
  if (o.max_bytes < 0) tnn::fail<tnn::ValueError>("--max-bytes: expected >= 0 (0: all), got ", o.max_bytes);
  if (o.was_given("--seq-len") && o.seq_len < 1) tnn::fail<tnn::ValueError>("--seq-len: expected >= 1, got ", o.seq_len);
  const bool explicit_split = o.was_given("--valid-fraction");
  if (!(o.valid_fraction >= 0 && o.valid_fraction < 1))
    tnn::fail<tnn::ValueError>("--valid-fraction: expected a value in [0, 1), got ", o.valid_fraction);
  if (explicit_split && o.all)
    tnn::fail<tnn::ValueError>("--all: scores the whole file, expected without --valid-fraction");
  if (!o.labels.empty() && o.labels.size() != o.checkpoints.size())
    tnn::fail<tnn::ValueError>("--label: expected one per --checkpoint (", o.checkpoints.size(), "), got ",
                               o.labels.size());
  const bool lengths_given = o.was_given("--lengths");
  const std::vector<tnn::Index> lengths = lengths_given ? parse_lengths(o.lengths) : std::vector<tnn::Index>{};
  if (!o.plot.empty()) {  // before the work, not after it; a plot naming an input would replace it
    check_svg_path(o.plot, "--plot");
    std::vector<std::pair<std::string, std::string>> inputs = {{"--data", o.data}};
    for (const std::string& c : o.checkpoints) inputs.emplace_back("--checkpoint", c);
    tnn::check_output_not_input(o.plot, "--plot", inputs);
  }

  // Every checkpoint is checked before the data is read; the records say whether --data is a
  // training file, which needs the whole file (to hash it) rather than --max-bytes of it.
  // Each checkpoint's tokenizer encodes the text (bits per byte then compare byte and subword
  // models on the same bytes); --tokens files hold ids of it already.
  const bool token_files_given = !o.tokens.empty();
  if (token_files_given && o.max_bytes > 0)
    tnn::fail<tnn::ValueError>("--max-bytes: applies to --data text, not to --tokens files");
  std::vector<std::optional<DataRecord>> records;
  std::vector<tnn::Tokenizer> tokenizers;
  bool need_all = explicit_split;
  for (const std::string& path : o.checkpoints) {
    (void)tnn::read_config(path);
    tokenizers.push_back(tnn::read_tokenizer(path));
    records.push_back(explicit_split || token_files_given ? std::nullopt : DataRecord::of_checkpoint(path));
    if (records.back()) {
      const std::uint64_t size = regular_file_size(o.data);
      need_all = need_all || size == 0 || size == records.back()->bytes;
    }
  }
  const tnn::ByteCorpus file =
      token_files_given ? tnn::ByteCorpus()
                        : tnn::ByteCorpus::from_file(
                              o.data, need_all ? 0 : static_cast<std::uint64_t>(std::max<tnn::Index>(o.max_bytes, 0)));
  std::optional<std::uint64_t> file_hash;

  const bool several = o.checkpoints.size() > 1;
  std::vector<PlotSeries> series;
  for (std::size_t k = 0; k < o.checkpoints.size(); ++k) {
    const std::string& path = o.checkpoints[k];
    // What to score: --valid-fraction's part, or, on this model's own training file, its held-out
    // part (all of it with --all); any other file, whole. The first --max-bytes of that. Said on
    // stdout with the numbers (stderr holds only errors: one line each).
    tnn::ByteCorpus corpus = file;
    std::string scored = "all", scope;
    if (explicit_split) {
      corpus = held_out_split(file, o.valid_fraction, o.valid_block).valid;
      scored = "held-out";
    } else if (const auto& rec = records[k]; rec && rec->bytes == static_cast<std::uint64_t>(file.size())) {
      if (!file_hash) file_hash = DataRecord::hash_of(file.bytes());
      if (*file_hash == rec->hash) {
        const std::string name = tnn::quote_path(o.data);
        if (rec->held_out == "none") {
          scored = "training";
          scope = "all of " + name + ", which the model was trained on (nothing was held out)";
        } else if (o.all) {
          scored = "training";
          scope = "all of " + name + " (--all), which the model was trained on except " + rec->describe();
        } else {
          corpus = held_out_split(file, rec->fraction, rec->block).valid;
          scored = "held-out";
          scope = "only " + rec->describe() + " of " + name + ", the model's training file: " +
                  std::to_string(corpus.size()) + " bytes (--all scores all of it)";
        }
      }
    }
    corpus = corpus_prefix(corpus, o.max_bytes);
    const tnn::Tokenizer& tokenizer = tokenizers[k];
    tnn::TokenCorpus ids;
    if (token_files_given) {
      ids = token_files(o.tokens, o.token_dtype, tokenizer);
      if (explicit_split) ids = held_out_split(ids, o.valid_fraction, o.valid_block).valid;
    } else {
      ids = tnn::tokenize_corpus(corpus, tokenizer);  // a byte model: the bytes themselves
    }

    tnn::TnnLM<float> model = tnn::load_lm<float>(path);
    const bool mlm = !model.config().causal;
    const tnn::LmObjective objective = mlm ? tnn::LmObjective::Mlm : tnn::LmObjective::Clm;
    std::vector<tnn::Index> ns = lengths;
    if (!lengths_given) {
      const tnn::Index trained = tnn::read_train_seq_len(path);
      ns = {o.was_given("--seq-len") ? o.seq_len : trained > 0 ? trained : kDefaultEvalLength};
    }
    if (!o.json) {
      if (several) std::printf("%s== %s\n", k ? "\n" : "", path.c_str());
      if (!scope.empty()) std::printf("scoring %s\n", scope.c_str());
      if (!tokenizer.is_bytes())  // loss and ppl are per token, bpb per byte of the text
        std::printf("tokenizer %s: %lld tokens%s\n", tokenizer.describe().c_str(), (long long)ids.size(),
                    token_files_given ? " (bits per byte unknown: token files)"
                                      : (" for " + std::to_string(corpus.size()) + " bytes").c_str());
      std::printf("%10s %12s %12s %10s %10s%s\n", "length", "loss(nats)", "ppl", "bpb", "tokens",
                  mlm ? "   accuracy" : "");
    }
    // Under mpirun the windows are split over the processes (tnn/dist/evaluate.hpp); rank 0 prints.
    const std::vector<tnn::LengthResult> rows = tnn::dist::evaluate_lengths(
        communicator(), model, ns,
        [&](tnn::Index n) { return tnn::EvalWindows(ids, o.batch, n, objective, tnn::kEvalMaskSeed); },
        [&](const tnn::LengthResult& row) {
          if (o.json) return;
          const tnn::EvalResult& r = row.result;
          std::printf("%10lld %12.4f %12.4f ", (long long)row.length, r.loss, r.ppl());
          if (std::isnan(r.bpb()))
            std::printf("%10s", "n/a");
          else
            std::printf("%10.4f", r.bpb());
          std::printf(" %10lld", (long long)r.tokens);
          if (mlm) std::printf("   %.4f", r.accuracy);
          std::printf("\n");
          std::fflush(stdout);
        });
    if (o.json) {
      nlohmann::json j;
      if (several) j["checkpoint"] = path;
      j["scored"] = scored;
      if (!tokenizer.is_bytes()) j["tokenizer"] = tokenizer.describe();
      j["lengths"] = ns;
      for (const auto& row : rows) {
        j["loss"].push_back(row.result.loss);
        j["ppl"].push_back(row.result.ppl());
        j["bpb"].push_back(row.result.bpb());  // NaN (token files) becomes null
        j["tokens"].push_back(row.result.tokens);
        if (mlm) j["accuracy"].push_back(row.result.accuracy);
      }
      std::cout << j.dump() << "\n";
    }
    PlotSeries ser;
    ser.label = o.labels.empty() ? default_label(path) : o.labels[k];
    for (const auto& row : rows) {
      ser.x.push_back(double(row.length));
      ser.y.push_back(row.result.loss);
    }
    series.push_back(std::move(ser));
  }
  if (!o.plot.empty() && communicator().is_root()) {
    write_plot(o.plot, series, o.title.empty() ? "Length extrapolation: log-perplexity by evaluation length" : o.title);
    if (!o.json) std::printf("plot written to %s\n", o.plot.c_str());
  }
}

void grad_lm(const GradOptions& o) {
  run_in_dtype(o.dtype, [&](auto tag) {
    using T = decltype(tag);
    tnn::TnnLM<T> model = tnn::load_model<tnn::TnnLM<T>>(o.checkpoint);
    tnn::Batch b = tnn::read_batch_file(o.inputs, model.config().vocab_size);
    write_grad_output(o.out, model, b.tokens, b.targets);
  });
}

namespace {

// A JSON string's content written as bytes arrive: '"', '\\' and control characters escaped
// (\n, \t, \u0001, ...), well-formed UTF-8 passed through, each ill-formed subpart as U+FFFD
// (a sequence cut by the end of a chunk waits for its next byte).
class JsonStringWriter {
 public:
  explicit JsonStringWriter(tnn::OutputStream& out) : out_(out) {}
  void add(const char* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      pend_ += p[i];
      drain(false);
    }
  }
  void finish() { drain(true); }

 private:
  void drain(bool at_end) {
    while (!pend_.empty()) {
      char32_t cp = 0;
      std::size_t bad = 1;
      const std::size_t n = tnn::utf8_decode(pend_, 0, &cp, &bad);
      if (n == 0) {
        const auto lead = static_cast<unsigned char>(pend_[0]);
        if (!at_end && bad == pend_.size() && lead >= 0xc2 && lead <= 0xf4) return;  // wait for the rest
        out_.write("\xEF\xBF\xBD");
        pend_.erase(0, bad);
        continue;
      }
      if (cp == '"') out_.write("\\\"");
      else if (cp == '\\') out_.write("\\\\");
      else if (cp == '\n') out_.write("\\n");
      else if (cp == '\t') out_.write("\\t");
      else if (cp == '\r') out_.write("\\r");
      else if (cp == '\b') out_.write("\\b");
      else if (cp == '\f') out_.write("\\f");
      else if (cp < 0x20) {
        char u[8];
        std::snprintf(u, sizeof u, "\\u%04x", static_cast<unsigned>(cp));
        out_.write(u);
      } else {
        out_.write(std::string_view(pend_.data(), n));
      }
      pend_.erase(0, n);
    }
  }
  tnn::OutputStream& out_;
  std::string pend_;  // bytes of a UTF-8 sequence not complete yet (at most 3)
};

// A sample printed after the first: kept in an unlinked temporary file (in $TMPDIR, else /tmp)
// while it is generated, so memory does not grow with --tokens; every write is checked.
class SpillFile {
 public:
  explicit SpillFile(tnn::Index k) : what_("the temporary file of sample " + std::to_string(k)) {
    const char* dir = std::getenv("TMPDIR");
    std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/tnn-generate-XXXXXX";
    fd_ = ::mkstemp(tmpl.data());
    if (fd_ < 0) tnn::fail<tnn::IoError>("creating ", what_, " in ", tnn::quote_path(tmpl), ": ", std::strerror(errno));
    ::unlink(tmpl.c_str());  // gone from the directory now; the space is freed when we close it
  }
  ~SpillFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;
  void write(const char* p, std::size_t n) {
    buf_.append(p, n);
    if (buf_.size() >= (1 << 16)) flush();
  }
  // Everything written, in order, to `emit(const char*, n)`.
  template <class Emit>
  void replay(Emit&& emit) {
    flush();
    char chunk[1 << 16];
    for (off_t at = 0;;) {
      const ssize_t r = ::pread(fd_, chunk, sizeof chunk, at);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) tnn::fail<tnn::IoError>("reading ", what_, ": ", std::strerror(errno));
      if (r == 0) break;
      emit(chunk, static_cast<std::size_t>(r));
      at += r;
    }
  }

 private:
  void flush() {
    for (std::size_t done = 0; done < buf_.size();) {
      const ssize_t w = ::write(fd_, buf_.data() + done, buf_.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) tnn::fail<tnn::IoError>("writing ", what_, ": ", std::strerror(errno));
      done += static_cast<std::size_t>(w);
    }
    buf_.clear();
  }
  std::string what_;
  int fd_ = -1;
  std::string buf_;
};

// The prompt's bytes: --prompt, or the file --prompt-file names ('-': standard input). At most
// 64 MB: a prompt goes in by one forward pass.
std::string prompt_text(const GenerateOptions& o) {
  if (o.prompt_file.empty()) return o.prompt;
  constexpr std::uint64_t kMaxPrompt = std::uint64_t(1) << 26;
  if (o.prompt_file != "-") {
    const std::vector<std::uint8_t> b = tnn::read_file_bounded(o.prompt_file, kMaxPrompt, "--prompt-file");
    return std::string(b.begin(), b.end());
  }
  std::string s;
  char buf[1 << 16];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
    s.append(buf, n);
    if (s.size() > kMaxPrompt)
      tnn::fail<tnn::ValueError>("--prompt-file -: expected at most ", kMaxPrompt, " bytes on standard input, got more");
  }
  if (std::ferror(stdin)) tnn::fail<tnn::IoError>("--prompt-file -: reading standard input: ", std::strerror(errno));
  return s;
}

}  // namespace

void generate(const GenerateOptions& o) {
  set_threads(o.threads);
  const tnn::TnnConfig cfg = tnn::read_config(o.checkpoint);
  if (cfg.task != tnn::Task::Lm)
    tnn::fail<tnn::ConfigError>("generate: expected a causal language model, got ", task_cli(cfg.task).what,
                                " (task '", tnn::to_string(cfg.task), "'): ", tnn::quote_path(o.checkpoint));
  if (!cfg.causal)
    tnn::fail<tnn::ConfigError>("generate: expected a causal checkpoint, got a bidirectional (masked LM) one: ",
                                tnn::quote_path(o.checkpoint));
  if (o.tokens < 0) tnn::fail<tnn::ValueError>("--tokens: expected >= 0, got ", o.tokens);
  if (o.samples < 1) tnn::fail<tnn::ValueError>("--samples: expected >= 1, got ", o.samples);
  constexpr tnn::Index kMaxSamples = 1 << 16;  // each sample after the first holds a temporary file
  if (o.samples > kMaxSamples) tnn::fail<tnn::ValueError>("--samples: expected at most ", kMaxSamples, ", got ", o.samples);
  tnn::SamplingConfig sc;
  sc.temperature = o.temperature;
  sc.top_k = o.top_k;
  sc.top_p = o.top_p;
  sc.validate();
  const std::string prompt = prompt_text(o);
  // An empty prompt starts the text at the beginning of a line: the model reads one newline
  // (never printed), as every line of its training text began after one.
  const std::string context = prompt.empty() ? std::string("\n") : prompt;
  // The checkpoint's tokenizer encodes the context and decodes the tokens (bytes for a byte model).
  const tnn::Tokenizer tokenizer = tnn::read_tokenizer(o.checkpoint);
  if (!tokenizer.has_text())
    tnn::fail<tnn::ConfigError>("generate: ", tnn::quote_path(o.checkpoint), " was trained on token files without a "
                                "tokenizer (", tokenizer.describe(), "): it has no text to show; train with --tokenizer");
  const std::vector<std::int32_t> context_ids = tokenizer.encode(context);
  if (context_ids.empty())
    tnn::fail<tnn::ValueError>(prompt.empty() ? "generate: the tokenizer encodes a newline as no tokens; give --prompt"
                                              : "--prompt: its tokenizer encodes it as no tokens at all");

  tnn::TnnLM<float> model = tnn::load_lm<float>(o.checkpoint);
  const tnn::DecoderMethod method = tnn::parse_enum<tnn::DecoderMethod>(o.decoder, "--decoder");
  const tnn::Index K = o.samples;
  // Room for the whole text when it is short; a longer run grows the buffers as it goes, so
  // memory follows the text generated so far, never what --tokens asks for up front.
  const tnn::Index capacity = static_cast<tnn::Index>(context_ids.size()) + std::min<tnn::Index>(o.tokens, 1 << 16);
  // K samples decode as one batch; sample k draws from its own Rng(seed + k), so
  // `--samples 1 --seed S+k` regenerates sample k alone.
  tnn::IncrementalDecoder<float> dec(model, capacity, K, method);
  std::vector<tnn::TokenSampler> samplers(static_cast<std::size_t>(K), tnn::TokenSampler(sc));
  std::vector<tnn::Rng> rngs;
  for (tnn::Index k = 0; k < K; ++k) rngs.emplace_back(o.seed + static_cast<std::uint64_t>(k));

  // The prompt goes in by one full forward (O(n log n)), shared by every sample; then one
  // exact step per token.
  tnn::Tensor<std::int32_t> tokens({static_cast<tnn::Index>(context_ids.size())});
  std::copy(context_ids.begin(), context_ids.end(), tokens.begin());
  const tnn::Tensor<float>* logits = &dec.prefill(tokens);  // [V] or [K, V]

  // The text is written as it is generated (sample 0 straight to stdout, flushed at every byte
  // on a terminal and at least every 50 ms otherwise; later samples into temporary files until
  // their turn), so memory stays flat whatever --tokens says, and a closed pipe or a full disk
  // (`tnn generate | head -c 100`) stops the generation at the next flush with one error line.
  std::fflush(stdout);
  tnn::OutputStream out = tnn::OutputStream::standard_output("standard output", ::isatty(STDOUT_FILENO) == 1 ? 0 : 0.05);
  JsonStringWriter json0(out);
  const std::string head = o.echo ? prompt : std::string();
  auto emit0 = [&](const char* p, std::size_t n) {
    if (o.json)
      json0.add(p, n);
    else
      out.write(std::string_view(p, n));
  };
  // Every sample of several under its own header; each text ends with a newline, so the shell's
  // prompt (or the next header) starts on a line of its own.
  auto header = [&](tnn::Index k) {
    if (K > 1 && !o.json)
      out.write("----- sample " + std::to_string(k) + " (seed " + std::to_string(o.seed + static_cast<std::uint64_t>(k)) +
                ") -----\n");
  };
  if (o.json) out.write("[\"");
  header(0);
  emit0(head.data(), head.size());
  std::vector<std::unique_ptr<SpillFile>> rest;
  for (tnn::Index k = 1; k < K; ++k) rest.push_back(std::make_unique<SpillFile>(k));
  // Each sample's ids become text as soon as they decode to whole characters (TextStream).
  std::vector<tnn::TextStream> decoded(static_cast<std::size_t>(K), tnn::TextStream(tokenizer, context_ids));
  // A byte model samples over all of its V logits (ids past 255 become a space, as they always
  // have); a subword model only over its tokenizer's ids.
  const tnn::Index V = tokenizer.is_bytes() ? cfg.vocab_size : tokenizer.vocab_size();
  tnn::Tensor<std::int32_t> next({K});
  for (tnn::Index i = 0; i < o.tokens; ++i) {
    for (tnn::Index k = 0; k < K; ++k) {
      const auto ks = static_cast<std::size_t>(k);
      std::int32_t t = samplers[ks].sample(logits->data() + k * cfg.vocab_size, V, rngs[ks]);
      if (tokenizer.is_bytes() && t > 255) t = ' ';  // never emit a non-byte symbol
      next[k] = t;
      const std::string piece = decoded[ks].push(t);
      if (k == 0)
        emit0(piece.data(), piece.size());
      else
        rest[ks - 1]->write(piece.data(), piece.size());
    }
    if (i + 1 < o.tokens) logits = &dec.step(next);
  }
  for (tnn::Index k = 0; k < K; ++k) {
    const std::string last = decoded[static_cast<std::size_t>(k)].finish();
    if (k == 0)
      emit0(last.data(), last.size());
    else
      rest[static_cast<std::size_t>(k - 1)]->write(last.data(), last.size());
  }
  if (o.json) {
    json0.finish();
    out.write("\"");
    for (tnn::Index k = 1; k < K; ++k) {
      out.write(",\"");
      JsonStringWriter js(out);
      js.add(head.data(), head.size());
      rest[static_cast<std::size_t>(k - 1)]->replay([&](const char* p, std::size_t n) { js.add(p, n); });
      js.finish();
      out.write("\"");
    }
    out.write("]\n");
  } else {
    out.put('\n');
    for (tnn::Index k = 1; k < K; ++k) {
      header(k);
      out.write(head);
      rest[static_cast<std::size_t>(k - 1)]->replay([&](const char* p, std::size_t n) { out.write(std::string_view(p, n)); });
      out.put('\n');
    }
  }
  out.close();
}

}  // namespace tnncli
