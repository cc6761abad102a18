/* map.h - what a worker does with a map request: the scene in the body classified over a grid of
 * windows (scenemap.h) and answered as RFC 7946 GeoJSON (application/geo+json).
 *
 * A map runs on the worker that took it, on one thread (os_map_run with threads = 1 runs its only
 * worker on the calling thread, with a session created for the job and sized for the window), so
 * it holds one worker of the pool and no more; routes.c admits at most max(1, workers - 1) maps
 * at once, so classify keeps a worker when there are two or more. The run stops at its next
 * batch of windows when --map-timeout has passed since the head arrived (504) or the server
 * starts draining (503: the drain does not wait for maps, which may take minutes).
 *
 * Errors as classify's (infer.h): empty 400, not a raster 415 (JPEG too: maps read TIFF, PNG and
 * JPEG 2000 only), damaged 400, over --max-pixels or bands/data type the model cannot read 422;
 * a window the raster cannot give (window_m without a projected CRS in metres, a stride over the
 * window in metres) 422.
 */
#ifndef SRV_MAP_H
#define SRV_MAP_H

#include "pool.h"

#define SRV_MAP_TYPES        "image/tiff, image/png or image/jp2"
#define SRV_MAP_MAX_WINDOW_M 1e7 /* metres: more than any scene on Earth is wide */
#define SRV_MAP_CONTENT_TYPE "application/geo+json"
/* ?format=tiff or Accept: image/tiff (the OGC media type of a COG) */
#define SRV_MAP_COG_TYPE "image/tiff; application=geotiff; profile=cloud-optimized"

/* srv_job callbacks; the job must be the `job` member of a srv_request. */
void srv_map_run(srv_worker *w, srv_job *job);
void srv_map_cancel(srv_job *job); /* answers 503: the server shut down first */

#endif
