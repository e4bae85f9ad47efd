# SPDX-License-Identifier: MIT
# cmake -DSPV=x.spv -DOUT=x.cpp -DNAME=x -P embed_spirv.cmake: writes the SPIR-V words of x.spv as
# `const std::uint32_t kvs::gpu::shaders::x[]` plus its word count into x.cpp.
# Regular expressions over the whole hex string: linear time (a SUBSTRING loop was quadratic and
# took minutes for probe_split_sg's 220 KiB).
file(READ ${SPV} bytes HEX)
string(LENGTH "${bytes}" length)
math(EXPR words "${length} / 8")
# Little-endian bytes b0 b1 b2 b3 -> word 0xb3b2b1b0, eight words per line.
string(REGEX REPLACE "(..)(..)(..)(..)" "0x\\4\\3\\2\\1u," body "${bytes}")
string(REGEX REPLACE "((0x........u,)(0x........u,)(0x........u,)(0x........u,)(0x........u,)(0x........u,)(0x........u,)(0x........u,))"
       "\\1\n" body "${body}")
file(WRITE ${OUT} "// Generated from ${NAME}.comp by gpu/cmake/embed_spirv.cmake; do not edit.\n#include <cstddef>\n#include <cstdint>\nnamespace kvs::gpu::shaders {\nextern const std::uint32_t ${NAME}[] = {\n${body}\n};\nextern const std::size_t ${NAME}_words = ${words};\n} // namespace kvs::gpu::shaders\n")
