/* Compiled by tests/clients/ccache/run.sh; its object file travels through the remote storage.
 * nonce.h (written by run.sh) defines TESSERA_NONCE, so each run has cache keys of its own. */
#include <stdio.h>

#include "nonce.h"

int main(void) {
    printf("hello from the ccache fixture, nonce %s\n", TESSERA_NONCE);
    return 0;
}
