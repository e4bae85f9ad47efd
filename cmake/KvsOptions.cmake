# SPDX-License-Identifier: MIT
# kvs_option(): an option that is printed at configure time, so a build log says how it was made.
function(kvs_option name help default)
    option(${name} "${help}" ${default})
    message(STATUS "  ${name} = ${${name}}   (${help})")
endfunction()

# kvs_warnings(target): the project's own code builds warning-free with these on.
function(kvs_warnings target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                             -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
                                             -Wnull-dereference -Wimplicit-fallthrough)
    if(KVS_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()
