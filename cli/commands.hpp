// The subcommands of the sandboxd binary.
#pragma once

namespace sandboxd::cli {

int serve(int argc, char** argv);
int keys(int argc, char** argv);
int templates(int argc, char** argv);
int audit(int argc, char** argv);
int cleanup(int argc, char** argv);
/// `sandboxd worker ...`: join a control node, or ask one (list, drain).
int worker(int argc, char** argv);
int sandbox(int argc, char** argv); // the client: sandboxd sandbox list|create|exec|...

} // namespace sandboxd::cli
