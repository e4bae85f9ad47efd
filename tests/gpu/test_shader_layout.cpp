// SPDX-License-Identifier: MIT
// The shaders and the host agree on gpu/shaders/include/attention_layout.h: read from the
// embedded SPIR-V itself (decorations), every binding lies in the shared layout, every
// specialization constant a shader declares is one the host fills for that kernel (a missing one
// would silently keep the shader's default), and the push-constant block is the host's.
// No device needed: this inspects the words compiled into kvs_gpu.
#include "kernels/pipelines.h"
#include "kvs_test.h"

#include <QtTest>
#include <algorithm>
#include <cstdint>
#include <map>
#include <set>

using namespace kvs::gpu;
using kernels::Kernel;

namespace {

// What one SPIR-V module declares, from its OpDecorate / OpMemberDecorate / OpTypePointer.
struct Reflection {
    bool valid = false;
    std::set<std::uint32_t> bindings, descriptorSets, specIds;
    std::uint32_t pushConstantEnd = 0; // bytes: last member offset + 4 (members are 4-byte)
    std::uint32_t pushConstantMembers = 0;
};

Reflection reflect(std::span<const std::uint32_t> words) {
    constexpr std::uint32_t kMagic = 0x07230203, kOpTypePointer = 32, kOpDecorate = 71,
                            kOpMemberDecorate = 72, kSpecId = 1, kBinding = 33, kDescriptorSet = 34,
                            kOffset = 35, kPushConstant = 9, kOpVariable = 59;
    Reflection r;
    if (words.size() < 5 || words[0] != kMagic)
        return r;
    std::map<std::uint32_t, std::uint32_t> pushPointee; // PushConstant pointer type -> pointee
    std::uint32_t pushStruct = 0; // the pointee of the one PushConstant variable's type
    std::vector<std::pair<std::uint32_t, std::uint32_t>> offsets; // (struct id, offset)
    for (std::size_t i = 5; i < words.size();) {
        const std::uint32_t opcode = words[i] & 0xffffu, count = words[i] >> 16;
        if (count == 0 || i + count > words.size())
            return r;
        const auto* op = &words[i + 1];
        if (opcode == kOpDecorate && count >= 4) {
            if (op[1] == kSpecId)
                r.specIds.insert(op[2]);
            else if (op[1] == kBinding)
                r.bindings.insert(op[2]);
            else if (op[1] == kDescriptorSet)
                r.descriptorSets.insert(op[2]);
        } else if (opcode == kOpMemberDecorate && count >= 5 && op[2] == kOffset) {
            offsets.emplace_back(op[0], op[3]);
        } else if (opcode == kOpTypePointer && count == 4 && op[1] == kPushConstant) {
            pushPointee[op[0]] = op[2];
        } else if (opcode == kOpVariable && count >= 4 && op[2] == kPushConstant) {
            pushStruct = pushPointee[op[0]];
        }
        i += count;
    }
    for (const auto& [id, offset] : offsets)
        if (id == pushStruct) {
            r.pushConstantEnd = std::max(r.pushConstantEnd, offset + 4);
            ++r.pushConstantMembers;
        }
    r.valid = true;
    return r;
}

// A key of `kernel` as the host builds it (the values do not matter, only which ids it fills).
std::set<std::uint32_t> hostSpecIds(Kernel kernel) {
    kernels::PipelineKey key;
    key.kernel = kernel;
    std::set<std::uint32_t> ids;
    for (std::uint32_t id = 0; id < key.spec().size(); ++id)
        ids.insert(id);
    return ids;
}

} // namespace

class TestShaderLayout : public QObject {
    Q_OBJECT
private slots:
    void bindingsLieInTheSharedLayout() {
        for (Kernel kernel : kernels::kAllKernels) {
            const Reflection r = reflect(kernels::spirv(kernel));
            QVERIFY2(r.valid, kernels::kernelName(kernel));
            QVERIFY2(!r.bindings.empty(), kernels::kernelName(kernel));
            QCOMPARE(*r.bindings.rbegin() < layout::kBindingCount, true);
            QCOMPARE(r.descriptorSets, std::set<std::uint32_t>{0});
        }
        // The buffers each kernel reads or writes, by the names the host binds them by.
        const auto bindingsOf = [](Kernel k) { return reflect(kernels::spirv(k)).bindings; };
        QVERIFY(bindingsOf(Kernel::Copy) ==
                (std::set<std::uint32_t>{KVS_BINDING_COPY_SRC, KVS_BINDING_COPY_DST}));
        QVERIFY(bindingsOf(Kernel::Hadamard) == (std::set<std::uint32_t>{KVS_BINDING_COPY_SRC}));
        QVERIFY(bindingsOf(Kernel::Combine) ==
                (std::set<std::uint32_t>{layout::index(layout::Binding::Partials),
                                         layout::index(layout::Binding::Outputs),
                                         layout::index(layout::Binding::LogSumExp)}));
        for (Kernel k : {Kernel::ProbeSplit, Kernel::ProbeSplitSubgroup, Kernel::AttentionMap}) {
            const auto b = bindingsOf(k);
            for (auto name : {layout::Binding::Q, layout::Binding::K, layout::Binding::V,
                              layout::Binding::Heads, layout::Binding::Positions})
                QVERIFY2(b.count(layout::index(name)) == 1, kernels::kernelName(k));
        }
    }

    void everySpecializationConstantIsFilledByTheHost() {
        for (Kernel kernel : kernels::kAllKernels) {
            const Reflection r = reflect(kernels::spirv(kernel));
            const auto host = hostSpecIds(kernel);
            for (std::uint32_t id : r.specIds)
                QVERIFY2(host.count(id) == 1,
                         qPrintable(QString("%1 declares specialization constant %2; the host "
                                            "fills ids 0..%3")
                                        .arg(kernels::kernelName(kernel))
                                        .arg(id)
                                        .arg(host.size() - 1)));
            QVERIFY(r.specIds.count(KVS_SPEC_WG) == 1); // the workgroup size, in every kernel
        }
        // The subgroup kernel's own constants survive compilation: the host's ids are its ids.
        const Reflection sg = reflect(kernels::spirv(Kernel::ProbeSplitSubgroup));
        for (std::uint32_t id : {KVS_SPEC_SG, KVS_SPEC_BR, KVS_SPEC_K_VEC, KVS_SPEC_V_VEC,
                                 KVS_SPEC_K_MODE, KVS_SPEC_V_MODE})
            QVERIFY2(sg.specIds.count(id) == 1, qPrintable(QString::number(id)));
    }

    void pushConstantsAreTheHostsBlock() {
        for (Kernel kernel : kernels::kAllKernels) {
            const Reflection r = reflect(kernels::spirv(kernel));
            QVERIFY2(r.pushConstantEnd <= layout::kPushConstantBytes, kernels::kernelName(kernel));
            if (kernel == Kernel::Copy || kernel == Kernel::Hadamard) {
                QCOMPARE(r.pushConstantMembers, 1u); // count / rows
                continue;
            }
            // struct Params: nq … mapStride, 9 words; the host's 10th word is padding.
            QCOMPARE(r.pushConstantMembers, 9u);
            QCOMPARE(r.pushConstantEnd, layout::kPushConstantBytes - 4);
        }
    }

    void reflectionRejectsWhatIsNotSpirv() {
        const std::uint32_t notSpirv[] = {1, 2, 3, 4, 5, 6};
        QVERIFY(!reflect(notSpirv).valid);
        // A module cut in the middle of an instruction is not read past its end.
        const auto words = kernels::spirv(Kernel::Copy);
        std::vector<std::uint32_t> cut(words.begin(), words.begin() + 6);
        cut[5] = (100u << 16) | 71u;
        QVERIFY(!reflect(cut).valid);
    }
};

QTEST_GUILESS_MAIN(TestShaderLayout)
#include "test_shader_layout.moc"
