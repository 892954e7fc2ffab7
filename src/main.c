/* main.c - placeholder until the engine lands. */
#include <stdio.h>

#include "tunnelwatch/tw.h"

int main(void)
{
    printf("tunnelwatch %s\n", TW_VERSION);
    return 0;
}
