/* Private to src/io: the JSON parser with a byte offset added to every position it
 * reports, for JSON embedded in a larger file (the safetensors header starts at byte 8). */
#ifndef LT_IO_JSON_H
#define LT_IO_JSON_H

#include "longtail/io.h"

lt_status lt_json_parse_at(const char *text, int64_t len, const char *name, int64_t base,
                           lt_json **out);

#endif
