# -*- Python -*-
# lit configuration of the jamba-mlir tests.

import os
import shutil

import lit.formats
from lit.llvm import llvm_config

config.name = "JAMBA"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "README.md", "Inputs", "lit.cfg.py",
                   "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.jamba_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%shared", config.jamba_shared_dir))
config.substitutions.append(("%jamba_src", config.jamba_src_root))
config.substitutions.append(("%jamba_bin", config.jamba_tools_dir))
config.substitutions.append(("%models", os.path.join(config.jamba_shared_dir,
                                                     "models")))

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.jamba_tools_dir, config.llvm_tools_dir]
tools = ["jamba-opt"]
for optional in ["jamba-make-checkpoint", "jamba-import", "jamba-interpret",
                 "jamba-quantize", "jamba-quant-report", "jamba-dump",
                 "jamba-compile", "jamba-run", "jamba-plan",
                 "jamba-compare-logits", "jamba-bench-cuda", "jamba-rebind"]:
    if os.path.exists(os.path.join(config.jamba_tools_dir, optional)):
        tools.append(optional)
        config.available_features.add(optional)
llvm_config.add_tool_substitutions(tools, tool_dirs)

# GPU-related features come from what this machine has (STYLE.md habit 12).
ptxas = shutil.which("ptxas", path=os.pathsep.join(
    [config.cuda_toolkit_dir or "", "/usr/local/cuda/bin",
     config.environment.get("PATH", "")]))
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
if os.path.isdir(os.path.join(config.jamba_shared_dir, "models")):
    config.available_features.add("shared-models")

# Real MPI ranks (test/Runtime/mpi.test): mpirun on PATH and the runtime's
# MPI check program built (it is when CMake found MPI).
mpi_check = os.path.join(config.jamba_tools_dir, "mpi_allreduce_check")
if shutil.which("mpirun") and os.path.exists(mpi_check):
    config.available_features.add("mpi")
    config.substitutions.append(("%mpi_allreduce_check", mpi_check))
