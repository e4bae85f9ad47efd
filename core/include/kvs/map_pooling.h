// SPDX-License-Identifier: MIT
// Attention maps reduced to the pixels that show them: a window of a probe × context map pooled
// into at most `outRows` × `outCols` cells, so a map of thousands of keys is drawn as the image the
// screen can hold (and exactly, cell for cell, once the window is zoomed to fewer keys than
// pixels). Header-only: this is drawing, not analysis, and the views (which may use only core's
// headers) do it for every zoom, pan and resize.
#pragma once

#include "kvs/status.h"
#include "kvs/tensor.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace kvs {

enum class MapPooling {
    Max, // the value of largest magnitude in each block, sign kept (a lone strong key stays
         // visible)
    Mean // the block's mean (the total weight a pixel covers, spread over its keys)
};

// A half-open window [rowBegin, rowEnd) × [colBegin, colEnd) of a map.
struct MapWindow {
    int rowBegin = 0, rowEnd = 0, colBegin = 0, colEnd = 0;
    int rows() const { return rowEnd - rowBegin; }
    int cols() const { return colEnd - colBegin; }
};

// The window of `map` clamped to the map.
inline MapWindow clampWindow(const Matrix& map, MapWindow w) {
    const int rows = static_cast<int>(map.rows());
    const int cols = static_cast<int>(map.cols());
    w.rowBegin = std::clamp(w.rowBegin, 0, rows);
    w.rowEnd = std::clamp(w.rowEnd, w.rowBegin, rows);
    w.colBegin = std::clamp(w.colBegin, 0, cols);
    w.colEnd = std::clamp(w.colEnd, w.colBegin, cols);
    return w;
}

// The first window column of output cell `c` of a pooling of `width` columns into `cells` cells
// (cells ≤ width), as poolMap uses it; blockStart(cells, …) = width.
inline int blockStart(int c, int width, int cells) {
    return static_cast<int>(static_cast<long long>(c) * width / cells);
}

// Pools the window of `map` into min(window rows, outRows) × min(window cols, outCols) cells.
// Output cell c covers window columns [⌊c·w/n⌋, ⌊(c+1)·w/n⌋) (w window width, n output width),
// likewise for rows, so blocks differ in width by at most one and cover the window exactly once.
// When the window fits (w ≤ outCols and its rows ≤ outRows) the result is the window itself.
// Throws InvalidArgument for an empty window or a non-positive output size.
inline Matrix poolMap(const Matrix& map, MapWindow window, int outRows, int outCols,
                      MapPooling pooling) {
    const MapWindow w = clampWindow(map, window);
    if (w.rows() <= 0 || w.cols() <= 0)
        throw Error(ErrorCode::InvalidArgument,
                    "map pooling: the window [" + std::to_string(window.rowBegin) + ", " +
                        std::to_string(window.rowEnd) + ") x [" + std::to_string(window.colBegin) +
                        ", " + std::to_string(window.colEnd) + ") holds no cell of a " +
                        std::to_string(map.rows()) + " x " + std::to_string(map.cols()) + " map");
    if (outRows <= 0 || outCols <= 0)
        throw Error(ErrorCode::InvalidArgument,
                    "map pooling: the output needs at least one cell, got " +
                        std::to_string(outRows) + " x " + std::to_string(outCols));
    const int rows = std::min(w.rows(), outRows);
    const int cols = std::min(w.cols(), outCols);
    if (rows == w.rows() && cols == w.cols())
        return map.block(w.rowBegin, w.colBegin, rows, cols);
    Matrix out(rows, cols);
    for (int r = 0; r < rows; ++r) {
        const int r0 = w.rowBegin + blockStart(r, w.rows(), rows);
        const int r1 = w.rowBegin + blockStart(r + 1, w.rows(), rows);
        for (int c = 0; c < cols; ++c) {
            const int c0 = w.colBegin + blockStart(c, w.cols(), cols);
            const int c1 = w.colBegin + blockStart(c + 1, w.cols(), cols);
            const auto block = map.block(r0, c0, r1 - r0, c1 - c0);
            if (pooling == MapPooling::Mean) {
                out(r, c) = static_cast<float>(block.cast<double>().mean());
            } else {
                const float hi = block.maxCoeff();
                const float lo = block.minCoeff();
                out(r, c) = std::abs(lo) > std::abs(hi) ? lo : hi;
            }
        }
    }
    return out;
}

} // namespace kvs
