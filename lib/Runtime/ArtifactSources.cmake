# The sources of JambaArtifact (the artifact schema: reader, validator,
# writer, weights files, memory planner), relative to this directory. Both
# the main build (lib/Runtime/CMakeLists.txt) and the fuzzers' own build
# (fuzz/CMakeLists.txt), which compiles them with sanitizers, include this
# list, so that a new source reaches both.
set(JAMBA_ARTIFACT_SOURCES
  Artifact.cpp
  ArtifactWriter.cpp
  ExampleArtifact.cpp
  RebindWeights.cpp
  Sha256.cpp
  WeightFiles.cpp
  )
