// The slm subcommands. Each registers its flags on the CLI11 app and returns
// the function that runs it (exit status); errors are slm::Error exceptions,
// turned into one line on stderr by main().
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace slm::cli {

using Command = std::function<int()>;

Command add_info(CLI::App& app);
Command add_synth(CLI::App& app);
Command add_tokenize(CLI::App& app);
Command add_logits(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_run(CLI::App& app);
Command add_chat(CLI::App& app);
Command add_serve(CLI::App& app);
Command add_quantize(CLI::App& app);
Command add_perplexity(CLI::App& app);
Command add_list(CLI::App& app);

}  // namespace slm::cli
