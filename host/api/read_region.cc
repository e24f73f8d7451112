// Reader::read_region: a box of a tensor as runs of read_range calls.
#include <string>
#include <vector>

#include "ckptio/ckptio.h"
#include "formats/message_text.h"

namespace ckptio {
Status Reader::read_region(const TensorMeta& t, const std::vector<int64_t>& offsets,
                           const std::vector<int64_t>& sizes, void* dst) {
  const size_t nd = t.shape.size();
  const std::string what = path() + ": region " + ints_text(offsets) + " + " + ints_text(sizes) +
                           " of a tensor of shape " + ints_text(t.shape);
  if (offsets.size() != nd || sizes.size() != nd || t.strides.size() != nd)
    return Status(Code::kInvalidArgument, what + ": the box needs one offset and size per dim");
  for (size_t d = 0; d < nd; ++d)
    if (offsets[d] < 0 || sizes[d] < 0 || offsets[d] > t.shape[d] ||
        sizes[d] > t.shape[d] - offsets[d])
      return Status(Code::kInvalidArgument, what + ": leaves the tensor in dim " + std::to_string(d));
  if (t.storage >= tree().storages.size() || !tensor_view_fits(t, tree().storages))
    return Status(Code::kInvalidArgument, what + ": the tensor is not one of this checkpoint's");
  int64_t count = 1;
  for (int64_t s : sizes) count *= s;
  if (count == 0) return Status::Ok();
  const uint64_t es = uint64_t(dtype_size(t.dtype));

  // The run: the innermost dims the box covers whole and the storage holds contiguously,
  // plus the next one out, which the box may cover in part. A last dim with a stride other
  // than 1 gives runs of one element.
  size_t outer = nd;  // dims [outer, nd) form one run
  int64_t run = 1;
  if (nd > 0 && (t.strides[nd - 1] == 1 || sizes[nd - 1] == 1)) {
    outer = nd - 1;
    run = sizes[nd - 1];
    int64_t expect = t.shape[nd - 1];  // the stride a dim must have to join the run
    while (outer > 0 && sizes[outer] == t.shape[outer] &&
           (t.strides[outer - 1] == expect || sizes[outer - 1] == 1)) {
      --outer;
      run *= sizes[outer];
      expect *= t.shape[outer];
    }
  }
  auto* out = static_cast<uint8_t*>(dst);
  std::vector<int64_t> idx(outer, 0);  // position within the box of the dims outside the run
  for (int64_t done = 0; done < count; done += run) {
    int64_t element = t.storage_offset;
    for (size_t d = 0; d < nd; ++d)
      element += (offsets[d] + (d < outer ? idx[d] : 0)) * t.strides[d];
    CKPTIO_RETURN_IF_ERROR(read_range(t.storage, uint64_t(element) * es, out, uint64_t(run) * es));
    out += uint64_t(run) * es;
    for (size_t d = outer; d-- > 0;) {
      if (++idx[d] < sizes[d]) break;
      idx[d] = 0;
    }
  }
  return Status::Ok();
}

}  // namespace ckptio
