# SPDX-License-Identifier: MIT
# cmake -DSPV=x.spv -DOUT=x.cpp -DNAME=x -P embed_spirv.cmake: writes the SPIR-V words of x.spv as
# `const std::uint32_t kvs::gpu::shaders::x[]` plus its word count into x.cpp.
file(READ ${SPV} bytes HEX)
string(LENGTH "${bytes}" length)
math(EXPR words "${length} / 8")
set(body "")
set(i 0)
while(i LESS length)
    # Little-endian bytes b0 b1 b2 b3 -> word 0xb3b2b1b0.
    string(SUBSTRING "${bytes}" ${i} 8 chunk)
    string(SUBSTRING "${chunk}" 0 2 b0)
    string(SUBSTRING "${chunk}" 2 2 b1)
    string(SUBSTRING "${chunk}" 4 2 b2)
    string(SUBSTRING "${chunk}" 6 2 b3)
    string(APPEND body "0x${b3}${b2}${b1}${b0}u,")
    math(EXPR i "${i} + 8")
    math(EXPR col "${i} % 64")
    if(col EQUAL 0)
        string(APPEND body "\n")
    endif()
endwhile()
file(WRITE ${OUT} "// Generated from ${NAME}.comp by gpu/cmake/embed_spirv.cmake; do not edit.\n#include <cstddef>\n#include <cstdint>\nnamespace kvs::gpu::shaders {\nextern const std::uint32_t ${NAME}[] = {\n${body}\n};\nextern const std::size_t ${NAME}_words = ${words};\n} // namespace kvs::gpu::shaders\n")
