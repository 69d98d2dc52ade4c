-- wrk script for bench/wrk-compare.sh: PUT /ac/<64 hex> with a body of WRK_PUT_SIZE bytes,
-- cycling over WRK_PUT_KEYS keys, so that every upload is really stored (an /ac/ entry is
-- overwritten, last writer wins; nginx rewrites the file). A repeated /cas/ PUT would be
-- deduplicated by Tessera without storing anything, which would not be a fair comparison.
--
-- Requests are built once per thread and reused: at most WRK_PREBUILT_BYTES_MAX (256 MiB) of
-- them, so 1000 keys of 4 KiB but only 256 keys of 1 MiB (the cycle is that long). Formatting a
-- 1 MiB request in Lua on every call instead held wrk at ~10 req/s (measured), which would have
-- measured wrk, not the servers.
--
-- wrk counts 2xx and 3xx as success; a server refusing a PUT shows up as "Non-2xx or 3xx
-- responses" and the script reports it.

local size = tonumber(os.getenv("WRK_PUT_SIZE") or "4096")
local keys = tonumber(os.getenv("WRK_PUT_KEYS") or "1000")
local prebuilt_bytes_max = tonumber(os.getenv("WRK_PREBUILT_BYTES_MAX") or tostring(256 * 1024 * 1024))

local next_thread = 0

function setup(thread)
   thread:set("thread_index", next_thread)
   next_thread = next_thread + 1
end

local body
local prebuilt
local position

local function key_path(index)
   -- 64 lowercase hex digits: 56 fixed, 8 from the index.
   return string.format("/ac/%s%08x", string.rep("a", 56), index)
end

function init(args)
   -- The body bytes differ per byte position so that nothing along the path can compress or
   -- special-case a constant run.
   local pattern = {}
   for i = 0, 255 do
      pattern[#pattern + 1] = string.char((i * 131 + 7) % 256)
   end
   local block = table.concat(pattern)
   body = string.rep(block, math.floor(size / 256)) .. string.sub(block, 1, size % 256)
   -- Threads start at different keys so that they do not write the same key at the same time.
   position = ((thread_index or 0) * 997) % keys
   keys = math.max(1, math.min(keys, math.floor(prebuilt_bytes_max / size)))
   position = position % keys
   prebuilt = {}
   for i = 0, keys - 1 do
      prebuilt[i] = wrk.format("PUT", key_path(i), nil, body)
   end
end

function request()
   local index = position
   position = (position + 1) % keys
   return prebuilt[index]
end
