# SPDX-License-Identifier: MIT
# Installation where the Linux desktop expects things, and a Debian package (CPack):
#   bin/kvstudio, bin/kvstudio-cli
#   share/kvstudio/models/{default,variants/*}     the bundled models (startup.cpp looks there)
#   share/applications/ID.desktop, share/metainfo/ID.metainfo.xml, share/mime/packages/ID.xml
#   share/icons/hicolor/scalable/apps/ID.svg and {16..512}x{16..512}/apps/ID.png
#   share/man/man1/kvstudio.1.gz, kvstudio-cli.1.gz; share/doc/kvstudio/{copyright,changelog.gz}
# The files are in assets/packaging, the icon renderer in tools/render_icon.cpp.
# tests/tools/install_check.sh installs into a temporary prefix and checks the result.
include(GNUInstallDirs)
set(KVS_APP_ID io.github.kvstudio.KVStudio)
set(KVS_PACKAGING ${PROJECT_SOURCE_DIR}/assets/packaging)

install(TARGETS kvstudio-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
if(KVS_BUILD_GUI)
    install(TARGETS kvstudio RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

# The trained models of the source tree; a stripped checkout has the generated start-up model.
if(EXISTS ${PROJECT_SOURCE_DIR}/assets/models/default/config.json)
    install(DIRECTORY ${PROJECT_SOURCE_DIR}/assets/models/
            DESTINATION ${CMAKE_INSTALL_DATADIR}/kvstudio/models
            PATTERN "*.md" EXCLUDE)
else()
    install(DIRECTORY ${PROJECT_BINARY_DIR}/assets/models/default
            DESTINATION ${CMAKE_INSTALL_DATADIR}/kvstudio/models)
endif()

install(FILES ${KVS_PACKAGING}/${KVS_APP_ID}.desktop
        DESTINATION ${CMAKE_INSTALL_DATADIR}/applications)
install(FILES ${KVS_PACKAGING}/${KVS_APP_ID}.metainfo.xml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/metainfo)
install(FILES ${KVS_PACKAGING}/${KVS_APP_ID}.mime.xml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/mime/packages RENAME ${KVS_APP_ID}.xml)
install(FILES ${KVS_PACKAGING}/${KVS_APP_ID}.svg
        DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/scalable/apps)
# Man pages and the changelog gzipped as Debian policy asks (-n: no name or time stamp, so the
# package is reproducible); the copyright file in the machine-readable format.
find_program(KVS_GZIP gzip REQUIRED)
set(KVS_DOC_OUT ${PROJECT_BINARY_DIR}/packaging)
set(KVS_GZIPPED)
foreach(source kvstudio.1 kvstudio-cli.1 changelog)
    add_custom_command(OUTPUT ${KVS_DOC_OUT}/${source}.gz
        COMMAND ${CMAKE_COMMAND} -E make_directory ${KVS_DOC_OUT}
        COMMAND ${KVS_GZIP} -9nc ${KVS_PACKAGING}/${source} > ${KVS_DOC_OUT}/${source}.gz
        DEPENDS ${KVS_PACKAGING}/${source} VERBATIM)
    list(APPEND KVS_GZIPPED ${KVS_DOC_OUT}/${source}.gz)
endforeach()
add_custom_target(kvs_packaging_docs ALL DEPENDS ${KVS_GZIPPED})
install(FILES ${KVS_DOC_OUT}/kvstudio.1.gz ${KVS_DOC_OUT}/kvstudio-cli.1.gz
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${KVS_DOC_OUT}/changelog.gz ${KVS_PACKAGING}/copyright
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kvstudio)

# PNG icons rendered from the SVG at build time by tools/render_icon.cpp (no rasterizer package).
set(KVS_ICON_SIZES 16 22 24 32 48 64 128 256 512)
add_executable(kvs_render_icon ${PROJECT_SOURCE_DIR}/tools/render_icon.cpp)
target_link_libraries(kvs_render_icon PRIVATE Qt6::Gui Qt6::Svg)
set(KVS_ICON_OUT ${PROJECT_BINARY_DIR}/icons/hicolor)
set(KVS_ICON_PNGS)
foreach(size ${KVS_ICON_SIZES})
    list(APPEND KVS_ICON_PNGS ${KVS_ICON_OUT}/${size}x${size}/apps/${KVS_APP_ID}.png)
endforeach()
add_custom_command(OUTPUT ${KVS_ICON_PNGS}
    COMMAND kvs_render_icon ${KVS_PACKAGING}/${KVS_APP_ID}.svg ${KVS_ICON_OUT} ${KVS_APP_ID}
            ${KVS_ICON_SIZES}
    DEPENDS kvs_render_icon ${KVS_PACKAGING}/${KVS_APP_ID}.svg
    COMMENT "Rendering the icon to PNG")
add_custom_target(kvs_icons ALL DEPENDS ${KVS_ICON_PNGS})
install(DIRECTORY ${KVS_ICON_OUT}/ DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor)

# Debian package: `cpack -G DEB` in the build folder (docs/install.md).
set(CPACK_PACKAGE_NAME kvstudio)
set(CPACK_PACKAGE_VENDOR "The KV Studio developers")
set(CPACK_PACKAGE_CONTACT "The KV Studio developers <kvstudio@users.noreply.github.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "desktop studio for KV-cache compression of transformers")
# The extended description in lines of at most 80 characters (Debian policy).
string(CONCAT CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "KV Studio loads a transformer (Hugging Face GPT-2 and Llama-family\n"
    "checkpoints, or the small model it bundles), captures the keys and values of\n"
    "every layer and head for a prompt, compresses the cache under token selection,\n"
    "coreset, factored-key, shared-projection and codec schemes, runs attention\n"
    "with Vulkan compute shaders and shows attention maps, error-versus-memory\n"
    "trade-offs and per-head cache use live. kvstudio-cli does the same without a\n"
    "window.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/kvstudio/kvstudio")
# Library dependencies from the binaries (dpkg-shlibdeps), plus what is loaded at run time.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "qt6-qpa-plugins, libqt6svg6")
# Vulkan is loaded at run time (dlopen; the CPU reference runs without it), so shlibdeps cannot
# see it.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libvulkan1, mesa-vulkan-drivers | vulkan-icd")
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
include(CPack)
